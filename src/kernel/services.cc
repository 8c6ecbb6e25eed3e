#include "kernel/services.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "custos/audit/sealed_payload.h"
#include "custos/crypto/random.h"
#include "custos/crypto/sha256.h"
#include "kernel/environment.h"

namespace custos::kernel {
namespace {

std::string Key2(std::string_view a, std::string_view b) {
  std::string k(a);
  k += '\n';
  k += b;
  return k;
}

budget::Amounts ToAmounts(const policy::BudgetLimits& l) {
  budget::Amounts a;
  a[budget::Resource::kModelTokensIn] = l.model_tokens_in;
  a[budget::Resource::kModelTokensOut] = l.model_tokens_out;
  a[budget::Resource::kToolCalls] = l.tool_calls;
  a[budget::Resource::kWallMs] = l.wall_ms;
  a[budget::Resource::kNetBytesOut] = l.net_bytes_out;
  a[budget::Resource::kSpendMicros] = l.spend_micros;
  return a;
}

Result<std::string> ReadSecretSource(const std::string& source) {
  if (source.rfind("env:", 0) == 0) {
    const char* v = std::getenv(source.substr(4).c_str());
    if (v == nullptr)
      return Status(Reason::kNotFound, "environment variable is not set");
    return std::string(v);
  }
  if (source.rfind("file:", 0) == 0) {
    std::ifstream in(source.substr(5), std::ios::binary);
    if (!in)
      return Status(Reason::kNotFound, "secret file cannot be read");
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string v = ss.str();
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r'))
      v.pop_back();
    return v;
  }
  return Status(Reason::kInvalidArgument, "unknown secret source");
}

}  // namespace

std::shared_ptr<const SecretVault> SecretVault::Load(const policy::Policy& policy,
                                                     std::vector<std::string>* missing) {
  auto vault = std::make_shared<SecretVault>();
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const policy::SecretSpec& spec : policy.secrets()) {
    Result<std::string> v = ReadSecretSource(spec.source);
    if (!v.ok() || v->size() < effects::kMinSecretBytes) {
      if (missing != nullptr)
        missing->push_back(spec.name);
      continue;
    }
    pairs.emplace_back(spec.name, *v);
    vault->values_.emplace(spec.name, std::move(v).value());
  }
  Result<effects::SecretScanner> scanner = effects::SecretScanner::Create(pairs);
  // Every value was length-checked above, so Create cannot fail; an empty scanner otherwise.
  vault->scanner_ = std::make_unique<effects::SecretScanner>(
      scanner.ok() ? std::move(scanner).value() : effects::SecretScanner::Create({}).value());
  return vault;
}

const std::string* SecretVault::Find(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : &it->second;
}

Services::Services(KernelOptions options, std::unique_ptr<store::Store> store,
                   std::unique_ptr<crypto::SigningKey> identity)
    : options_(std::move(options)),
      store_(std::move(store)),
      identity_(std::move(identity)),
      env_(&LiveEnvironment()) {
  handle_key_ =
      std::make_unique<crypto::AeadKey>(crypto::AeadKey::DeriveFrom(*identity_, "handles"));
  payload_key_ = std::make_unique<crypto::AeadKey>(audit::DerivePayloadKey(*identity_));
  // The Biscuit token root: its own Ed25519 key, derived for that one purpose (decision 008).
  tokens_ = std::make_unique<TokenAuthority>(DeriveTokenRoot(*identity_));
}

Services::~Services() {
  writer_.reset();  // drain the log before the store goes
}

Status Services::Start() {
  audit::CheckpointOptions cp;
  cp.key = identity_.get();
  // cp.origin stays empty: the log's stored origin, fixed at its creation (decision 011).
  cp.every_entries = options_.checkpoint_every_entries;
  cp.every_ms = options_.checkpoint_every_ms;
  CUSTOS_ASSIGN_OR_RETURN(writer_, audit::LogWriter::Open(store_.get(), options_.durability,
                                                          options_.clock, std::move(cp)));
  SetPolicy(options_.policy);
  return Status::Ok();
}

void Services::ForgetProcessState() {
  ledger_ = std::make_unique<budget::Ledger>();
  std::unique_lock<std::shared_mutex> lock(agents_mu_);
  children_.clear();
  account_opened_ms_.clear();
  wall_deadline_ms_.clear();
}

namespace {
thread_local CallPin::Pinned* tls_pin = nullptr;
}  // namespace

CallPin::CallPin(const Services& s) : prev_(tls_pin) {
  {
    std::lock_guard<std::mutex> lock(s.policy_mu_);
    pinned_.policy = s.policy_;
    pinned_.vault = s.vault_;
  }
  pinned_.owner = &s;
  tls_pin = &pinned_;
}

CallPin::~CallPin() { tls_pin = prev_; }

std::shared_ptr<const policy::Policy> Services::policy() const {
  if (tls_pin != nullptr && tls_pin->owner == this)
    return tls_pin->policy;
  std::lock_guard<std::mutex> lock(policy_mu_);
  return policy_;
}

std::shared_ptr<const SecretVault> Services::vault() const {
  if (tls_pin != nullptr && tls_pin->owner == this)
    return tls_pin->vault;
  std::lock_guard<std::mutex> lock(policy_mu_);
  return vault_;
}

void Services::SetPolicy(std::shared_ptr<const policy::Policy> p) {
  std::vector<std::string> missing;
  std::shared_ptr<const SecretVault> v = SecretVault::Load(*p, &missing);
  for (const std::string& name : missing) {
    if (options_.notice)
      options_.notice("secret '" + name + "' has no readable value; secret.open of it will fail");
  }
  std::lock_guard<std::mutex> lock(policy_mu_);
  policy_ = std::move(p);
  vault_ = std::move(v);
}

Result<AgentState> Services::FindAgent(const policy::Policy& p, const std::string& run,
                                       const std::string& name) {
  // A child spawned in this run comes first: the policy's spawn lists name policy agents (the
  // templates a parent may instantiate), and inside the run the child holds only what its parent
  // granted it, not the template's syscalls.
  const std::string key = Key2(run, name);
  {
    std::shared_lock<std::shared_mutex> lock(agents_mu_);
    auto it = children_.find(key);
    if (it != children_.end())
      return it->second;
  }
  // A child spawned by another process sharing this store.
  CUSTOS_ASSIGN_OR_RETURN(std::optional<store::AgentRecord> rec, store_->GetAgent(run, name));
  if (rec) {
    AgentState st{rec->name, "", {}, rec->parent};
    // A child whose parent cannot be resolved is nobody: it never falls back to the template.
    Result<AgentState> parent =
        rec->parent == name ? Result<AgentState>(Status(Reason::kUnknownAgent, "self-parented"))
                            : FindAgent(p, run, rec->parent);
    if (!parent.ok()) {
      return Status(Reason::kUnknownAgent, "agent '" + name + "' was spawned in run '" + run +
                                               "' by '" + rec->parent +
                                               "', which is not known any more");
    }
    st.principal = parent->principal;
    for (const Json& n : rec->syscalls) {
      if (!n.is_string())
        continue;
      if (auto k = SyscallFromName(n.get<std::string>()))
        st.syscalls.Add(*k);
    }
    st.syscalls = st.syscalls.Intersect(parent->syscalls);
    std::unique_lock<std::shared_mutex> lock(agents_mu_);
    children_.emplace(key, st);
    return st;
  }
  if (const policy::AgentSpec* spec = p.FindAgent(name)) {
    return AgentState{spec->name, spec->name, spec->syscalls, ""};
  }
  return Status(Reason::kUnknownAgent, "agent '" + name + "' is not defined in the policy (" +
                                           std::string(p.name()) + ") nor spawned in run '" + run +
                                           "'");
}

Status Services::RegisterChild(const std::string& run, const AgentState& child,
                               const Json& budget_json) {
  store::AgentRecord rec;
  rec.name = child.name;
  rec.run = run;
  rec.parent = child.parent;
  rec.syscalls = Json::array();
  for (SyscallKind k : AllSyscalls()) {
    if (child.syscalls.Contains(k))
      rec.syscalls.push_back(SyscallName(k));
  }
  rec.budget = budget_json;
  rec.created_ms = clock().NowMillis();
  CUSTOS_RETURN_IF_ERROR(store_->PutAgent(rec));
  std::unique_lock<std::shared_mutex> lock(agents_mu_);
  children_[Key2(run, child.name)] = child;
  account_opened_ms_.emplace(Key2(child.name, run), clock().NowMillis());
  return Status::Ok();
}

Result<budget::AccountKey> Services::Account(const policy::Policy& p, const AgentState& agent,
                                             const std::string& run) {
  budget::AccountKey key{agent.name, run};
  const std::string k = Key2(agent.name, run);
  {
    std::shared_lock<std::shared_mutex> lock(agents_mu_);
    if (account_opened_ms_.count(k) != 0)
      return key;
  }
  if (!agent.parent.empty()) {
    // A child's account is carved at spawn; one spawned by another process is not in this
    // ledger, so it gets nothing rather than something unaccounted (fail closed).
    CUSTOS_RETURN_IF_ERROR(ledger_->Open(key, budget::Amounts{}));
  } else {
    const policy::AgentSpec* spec = p.FindAgent(agent.name);
    if (spec == nullptr)
      return Status(Reason::kUnknownAgent, "agent '" + agent.name + "' is gone");
    CUSTOS_RETURN_IF_ERROR(ledger_->Open(key, ToAmounts(spec->budget)));
  }
  std::unique_lock<std::shared_mutex> lock(agents_mu_);
  account_opened_ms_.emplace(k, clock().NowMillis());
  return key;
}

int64_t Services::AccountAgeMs(const budget::AccountKey& key) const {
  std::shared_lock<std::shared_mutex> lock(agents_mu_);
  auto it = account_opened_ms_.find(Key2(key.agent, key.run));
  return it == account_opened_ms_.end() ? 0 : clock().NowMillis() - it->second;
}

void Services::SetWallDeadline(const budget::AccountKey& key, int64_t deadline_ms) {
  std::unique_lock<std::shared_mutex> lock(agents_mu_);
  wall_deadline_ms_[Key2(key.agent, key.run)] = deadline_ms;
}

int64_t Services::WallRemainingMs(const budget::AccountKey& key,
                                  const budget::AccountStatus& status) const {
  {
    std::shared_lock<std::shared_mutex> lock(agents_mu_);
    auto it = wall_deadline_ms_.find(Key2(key.agent, key.run));
    if (it != wall_deadline_ms_.end())
      return it->second - clock().NowMillis();
  }
  return status.limit[budget::Resource::kWallMs] - AccountAgeMs(key);
}

Result<store::HandleRecord> Services::MintHandle(const std::string& agent, const std::string& run,
                                                 const std::string& kind, std::string_view content,
                                                 const labels::LabelSet& labels, const Json& meta) {
  store::HandleRecord h;
  h.id = crypto::RandomId("h_");
  h.owner_agent = agent;
  h.run = run;
  h.content_hash = crypto::Sha256(content).Hex();
  h.labels = labels.ToJson();
  h.kind = kind;
  h.sealed = handle_key_->Seal(content, h.id);  // bound to its id: no swapping sealed blobs
  h.meta = meta.dump();
  h.created_ms = clock().NowMillis();
  h.expires_ms = options_.handle_ttl_ms > 0 ? h.created_ms + options_.handle_ttl_ms : 0;
  // Not fsync'd on its own: every handle is minted inside a call whose outcome entry is appended
  // after it and waited for, and that commit's fsync makes this row durable too (decision 037).
  CUSTOS_RETURN_IF_ERROR(store_->PutHandle(h, store::Sync::kNone));
  return h;
}

Result<store::HandleRecord> Services::LoadHandle(const std::string& id, const std::string& agent,
                                                 const std::string& run) {
  Result<store::HandleRecord> h = store_->GetHandle(id);
  if (!h.ok()) {
    if (h.status().reason() == Reason::kNotFound) {
      return Status(Reason::kUnknownHandle, "no value has handle '" + id.substr(0, 40) + "'");
    }
    return h.status();
  }
  if (h->run != run || h->owner_agent != agent) {
    return Status(Reason::kForeignHandle, "handle " + id + " belongs to another agent or run");
  }
  if (h->expires_ms != 0 && clock().NowMillis() >= h->expires_ms) {
    return Status(Reason::kHandleExpired, "handle " + id + " expired");
  }
  return h;
}

Result<std::string> Services::Unseal(const store::HandleRecord& h) {
  return handle_key_->Open(h.sealed, h.id);
}

Status Services::AddToolProvider(const std::string& prefix,
                                 std::shared_ptr<ToolProvider> provider) {
  if (prefix.size() < 2 || prefix.back() != '.' || provider == nullptr) {
    return Status(Reason::kInvalidArgument,
                  "a tool provider needs a non-empty prefix ending in '.' and a provider");
  }
  std::unique_lock lock(providers_mu_);
  for (const auto& [p, _] : providers_) {
    // "a." and "a.b." would both claim "a.b.x": prefixes must not nest.
    if (p.starts_with(prefix) || prefix.starts_with(p)) {
      return Status(Reason::kAlreadyExists,
                    "tool provider prefix '" + prefix + "' overlaps '" + p + "'");
    }
  }
  providers_.emplace(prefix, std::move(provider));
  return Status::Ok();
}

Status Services::RemoveToolProvider(const std::string& prefix) {
  std::unique_lock lock(providers_mu_);
  if (providers_.erase(prefix) == 0)
    return Status(Reason::kNotFound, "no tool provider for prefix '" + prefix + "'");
  return Status::Ok();
}

std::shared_ptr<ToolProvider> Services::FindToolProvider(std::string_view target) const {
  std::shared_lock lock(providers_mu_);
  const size_t dot = target.find('.');
  if (dot == std::string_view::npos)
    return nullptr;
  // Prefixes do not nest, so at most one matches; look up each dotted prefix of the target.
  for (size_t end = dot; end != std::string_view::npos; end = target.find('.', end + 1)) {
    auto it = providers_.find(target.substr(0, end + 1));
    if (it != providers_.end())
      return it->second;
  }
  return nullptr;
}

std::string Services::SealPayload(std::string_view bytes, std::string_view ad) const {
  return audit::SealPayload(*payload_key_, bytes, ad);
}

std::string Services::SealHandleContent(std::string_view content, std::string_view id) const {
  return handle_key_->Seal(content, id);
}

}  // namespace custos::kernel
