#include "custos/kernel/kernel.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "custos/crypto/key_store.h"
#include "custos/crypto/random.h"
#include "custos/kernel/identity_rotation.h"
#include "kernel/pipeline.h"
#include "kernel/services.h"

namespace custos::kernel {

struct Kernel::Impl {
  std::unique_ptr<Services> services;
  Pipeline pipeline;
};

namespace {

Status EnsurePrivateDir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return Status(Reason::kIoError, "cannot create data directory: " + ec.message(), dir.string());
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    return Status(Reason::kIoError, "cannot stat data directory", dir.string());
  if ((st.st_mode & 077) != 0) {
    // Tighten rather than refuse: the directory is ours (created by init or by this call).
    if (::chmod(dir.c_str(), 0700) != 0) {
      return Status(Reason::kKeyError,
                    "data directory is accessible to group/others and cannot be made 0700",
                    dir.string());
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Kernel>> Kernel::Open(KernelOptions options) {
  if (!options.policy)
    return Status(Reason::kInvalidArgument, "a kernel needs a policy");
  if (options.clock == nullptr)
    options.clock = &SystemClock();
  if (!options.notice) {
    options.notice = [](const std::string& m) { std::fprintf(stderr, "custos: %s\n", m.c_str()); };
  }
  CUSTOS_RETURN_IF_ERROR(EnsurePrivateDir(options.data_dir));
  // A rotation a crash interrupted is finished (or undone) before the identity is read.
  CUSTOS_RETURN_IF_ERROR(FinishInterruptedRotation(options.data_dir, options.passphrase).status());
  const std::filesystem::path key_path = options.data_dir / "identity.key";
  bool created = false;
  CUSTOS_ASSIGN_OR_RETURN(crypto::SigningKey key,
                          std::filesystem::exists(key_path)
                              ? crypto::KeyStore::Load(key_path, options.passphrase)
                              : crypto::KeyStore::LoadOrCreate(key_path, &created));
  if (created) {
    options.notice("no identity configured: created a new Ed25519 identity " + key.id().hex +
                   " in " + (options.data_dir / "identity.key").string());
  }
  CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st,
                          store::OpenSqliteStore(options.data_dir / "custos.db"));
  auto impl = std::make_unique<Impl>();
  impl->services = std::make_unique<Services>(std::move(options), std::move(st),
                                              std::make_unique<crypto::SigningKey>(std::move(key)));
  CUSTOS_RETURN_IF_ERROR(impl->services->Start());
  Services& s = *impl->services;
  audit::LogEntry start;
  start.type = "event";
  start.syscall = "kernel.start";
  start.policy_hash = std::string(s.policy()->hash());
  start.extra = {{"identity", s.identity().id().hex},
                 {"policy", std::string(s.policy()->name())},
                 {"durability", std::string(audit::DurabilityName(s.options().durability))}};
  CUSTOS_RETURN_IF_ERROR(s.log().Append(std::move(start)));
  return std::unique_ptr<Kernel>(new Kernel(std::move(impl)));
}

Kernel::Kernel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Kernel::~Kernel() = default;

SyscallResult Kernel::Execute(const Syscall& call) { return Execute(call, ExecuteHooks{}); }

SyscallResult Kernel::Execute(const Syscall& call, const ExecuteHooks& hooks) {
  Services& s = *impl_->services;
  // Library callers (gateways) build Syscall values directly: hold them to the same parse and
  // schema stages as the wire, so a mistyped argument or an out-of-range kind is a recorded deny
  // and never reaches a handler (INV-7).
  if (Status st = ValidateSyscall(call); !st.ok()) {
    const Json raw = static_cast<size_t>(call.kind) < static_cast<size_t>(kSyscallKindCount)
                         ? call.ToJson()
                         : Json{{"agent", call.agent}, {"run", call.run}};
    const std::string kind_name =
        static_cast<size_t>(call.kind) < static_cast<size_t>(kSyscallKindCount)
            ? std::string(SyscallName(call.kind))
            : "";
    SyscallResult refused = impl_->pipeline.RecordParseFailure(st, &raw, kind_name, s);
    if (hooks.on_decision)
      hooks.on_decision(refused);
    return refused;
  }
  return impl_->pipeline.Execute(call, s, &hooks);
}

SyscallResult Kernel::ExecuteJson(std::string_view text) {
  Result<Json> j = ParseUntrustedJson(text);
  if (!j.ok())
    return impl_->pipeline.RecordParseFailure(j.status(), nullptr, "", *impl_->services);
  std::string kind_name;
  Result<Syscall> call = ParseSyscall(*j, &kind_name);
  if (!call.ok()) {
    return impl_->pipeline.RecordParseFailure(call.status(), &*j, kind_name, *impl_->services);
  }
  return impl_->pipeline.Execute(*call, *impl_->services);
}

SyscallResult Kernel::RecordRefusal(const Json& raw, const std::string& stage, const Status& why) {
  std::string kind_name;
  if (auto it = raw.find("kind"); raw.is_object() && it != raw.end() && it->is_string())
    kind_name = it->get<std::string>().substr(0, 64);
  return impl_->pipeline.RecordParseFailure(why, &raw, kind_name, *impl_->services, stage);
}

Decision Kernel::Explain(const Syscall& call) {
  return impl_->pipeline.Explain(call, *impl_->services);
}

Status Kernel::ReloadPolicy(std::shared_ptr<const policy::Policy> policy) {
  if (!policy)
    return Status(Reason::kInvalidArgument, "no policy");
  Services& s = *impl_->services;
  const std::string old_hash(s.policy()->hash());
  audit::LogEntry e;
  e.type = "event";
  e.syscall = "policy.reload";
  e.policy_hash = std::string(policy->hash());
  e.extra = {{"old_policy_hash", old_hash}, {"policy", std::string(policy->name())}};
  s.SetPolicy(std::move(policy));
  return s.log().Append(std::move(e)).status();
}

std::shared_ptr<const policy::Policy> Kernel::policy() const { return impl_->services->policy(); }

Status Kernel::AnswerApproval(const std::string& id, bool approve, const std::string& by,
                              const std::string& note) {
  Services& s = *impl_->services;
  return s.store().AnswerApproval(id, approve, by, note, s.clock().NowMillis());
}

Status Kernel::RegisterToolProvider(const std::string& prefix,
                                    std::shared_ptr<ToolProvider> provider) {
  return impl_->services->AddToolProvider(prefix, std::move(provider));
}

Status Kernel::UnregisterToolProvider(const std::string& prefix) {
  return impl_->services->RemoveToolProvider(prefix);
}

Status Kernel::RecordEvent(const std::string& name, const Json& details) {
  Services& s = *impl_->services;
  const CallPin pin(s);
  const effects::SecretScanner& scan = s.vault()->scanner();
  audit::LogEntry e;
  e.time_ms = s.clock().NowMillis();
  e.type = "event";
  e.syscall = scan.Redact(name);
  e.policy_hash = std::string(s.policy()->hash());
  // Redact every string, keys included: an event describes what untrusted peers sent.
  e.extra = scan.RedactJson(details);
  return s.log().Append(std::move(e)).status();
}

Json Kernel::RedactSecrets(const Json& value) {
  Services& s = *impl_->services;
  const CallPin pin(s);
  return s.vault()->scanner().RedactJson(value);
}

Result<audit::Appended> Kernel::Commit() { return impl_->services->log().Flush(); }

Result<std::string> Kernel::Grant(const std::string& agent, const std::string& run,
                                  const GrantOptions& options) {
  Services& s = *impl_->services;
  const std::shared_ptr<const policy::Policy> p = s.policy();
  const policy::AgentSpec* spec = p->FindAgent(agent);
  if (spec == nullptr) {
    return Status(Reason::kUnknownAgent, "agent '" + agent + "' is not defined in the policy (" +
                                             std::string(p->name()) + ")");
  }
  std::vector<std::string> kinds;
  if (options.syscalls.empty()) {
    for (SyscallKind k : AllSyscalls()) {
      if (spec->syscalls.Contains(k)) {
        kinds.emplace_back(SyscallName(k));
      }
    }
  } else {
    for (const std::string& name : options.syscalls) {
      std::optional<SyscallKind> k = SyscallFromName(name);
      if (!k) {
        return Status(Reason::kUnknownSyscall, "unknown syscall '" + name + "' in the grant");
      }
      if (!spec->syscalls.Contains(*k)) {
        return Status(Reason::kCapabilityMissing,
                      "the policy does not grant " + name + " to agent '" + agent + "'");
      }
      kinds.push_back(name);
    }
  }
  const int64_t now = s.clock().NowMillis();
  CUSTOS_ASSIGN_OR_RETURN(std::string datalog,
                          TokenAuthority::GrantDatalog(agent, run, kinds, options, now));
  CUSTOS_ASSIGN_OR_RETURN(std::string token, s.tokens().Mint(datalog));
  CUSTOS_ASSIGN_OR_RETURN(std::shared_ptr<const VerifiedToken> v, s.tokens().Verify(token));
  audit::LogEntry e;
  e.time_ms = now;
  e.type = "event";
  e.syscall = "token.grant";
  // Caller-chosen names reach the log only through the vault's redaction (INV-6).
  e.agent = s.vault()->scanner().Redact(agent);
  e.run = s.vault()->scanner().Redact(run);
  e.policy_hash = std::string(p->hash());
  e.extra = {{"revocation_id", v->revocation_ids.front()}, {"syscalls", kinds}};
  if (options.ttl_ms > 0) {
    e.extra["expires_ms"] = now + options.ttl_ms;
  }
  CUSTOS_RETURN_IF_ERROR(s.log().Append(std::move(e)));
  return token;
}

Result<std::string> Kernel::MintToken(std::string_view authority_datalog) {
  Services& s = *impl_->services;
  CUSTOS_ASSIGN_OR_RETURN(std::string token, s.tokens().Mint(authority_datalog));
  CUSTOS_ASSIGN_OR_RETURN(std::shared_ptr<const VerifiedToken> v, s.tokens().Verify(token));
  audit::LogEntry e;
  e.time_ms = s.clock().NowMillis();
  e.type = "event";
  e.syscall = "token.mint";
  e.policy_hash = std::string(s.policy()->hash());
  e.extra = {{"revocation_id", v->revocation_ids.front()}};
  CUSTOS_RETURN_IF_ERROR(s.log().Append(std::move(e)));
  return token;
}

Result<std::string> Kernel::Revoke(std::string_view token_or_id, const std::string& note) {
  Services& s = *impl_->services;
  std::string id;
  if (IsRevocationId(token_or_id)) {
    id = std::string(token_or_id);
  } else {
    CUSTOS_ASSIGN_OR_RETURN(std::shared_ptr<const VerifiedToken> v, s.tokens().Verify(token_or_id));
    id = v->revocation_ids.back();  // the token itself, and everything attenuated from it
  }
  const int64_t now = s.clock().NowMillis();
  CUSTOS_RETURN_IF_ERROR(s.store().RevokeToken(id, note, now));
  audit::LogEntry e;
  e.time_ms = now;
  e.type = "event";
  e.syscall = "token.revoke";
  e.policy_hash = std::string(s.policy()->hash());
  e.extra = {{"revocation_id", id}};
  CUSTOS_RETURN_IF_ERROR(s.log().Append(std::move(e)).status());
  return id;
}

std::string Kernel::token_root_public_key() const {
  return impl_->services->tokens().root_public_key().ToString();
}

store::Store& Kernel::store() { return impl_->services->store(); }

std::vector<std::pair<budget::AccountKey, budget::AccountStatus>> Kernel::BudgetAccounts() const {
  return impl_->services->ledger().Accounts();
}

const crypto::VerifyingKey& Kernel::identity() const {
  return impl_->services->identity().verifying_key();
}

}  // namespace custos::kernel
