// custos token mint | inspect | attenuate | verify | revoke: capability tokens from the command
// line (docs/spec/capability-token.md).
//
//   mint       needs the data directory's identity (the token root is derived from it) and a
//              policy: a grant for an agent, or an authority block in Datalog text.
//   inspect    prints every block in Datalog text, the revocation ids and the root key id.
//   attenuate  appends a block (Datalog text) offline: only the root *public* key is needed.
//   verify     checks the signatures against the root public key and, given a request, runs the
//              kernel's authorizer over it.
//   revoke     records a revocation id (or a token's last block) in the data directory's store
//              and its flight log, through a kernel (needs the identity and a policy, as mint).
// The root public key is --root-key ("ed25519/<hex>") or, if absent, derived from DATA_DIR.

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/cli.h"
#include "cli/kernel_session.h"
#include "custos/caps/biscuit.h"
#include "custos/caps/builder.h"
#include "custos/caps/datalog.h"
#include "custos/caps/token_text.h"
#include "custos/core/clock.h"
#include "custos/kernel/token_authority.h"

namespace custos::cli {
namespace {

// "-" reads standard input; "@path" reads a file; anything else is the text itself.
Result<std::string> ReadArg(const std::string& arg) {
  if (arg == "-" || (!arg.empty() && arg[0] == '@')) {
    std::ostringstream ss;
    if (arg == "-") {
      ss << std::cin.rdbuf();
    } else {
      std::ifstream in(arg.substr(1), std::ios::binary);
      if (!in) {
        return Status(Reason::kIoError, "cannot read " + arg.substr(1));
      }
      ss << in.rdbuf();
    }
    return ss.str();
  }
  return arg;
}

Result<caps::PublicKey> RootKey(const GlobalOptions& g, const std::string& root_key) {
  if (!root_key.empty()) {
    return caps::PublicKey::FromString(root_key);
  }
  return kernel::TokenRootOf(ResolveDataDir(g), PassphraseFromEnv());
}

// The rate option: "COUNT/WINDOW_MS".
Status ParseRate(const std::string& rate, kernel::GrantOptions* o) {
  const size_t slash = rate.find('/');
  if (slash == std::string::npos) {
    return Status(Reason::kInvalidArgument, "--rate is COUNT/WINDOW_MS, e.g. 10/60000");
  }
  try {
    o->rate_count = std::stoll(rate.substr(0, slash));
    o->rate_window_ms = std::stoll(rate.substr(slash + 1));
  } catch (...) {
    return Status(Reason::kInvalidArgument, "--rate is COUNT/WINDOW_MS, e.g. 10/60000");
  }
  return Status::Ok();
}

}  // namespace

void RegisterToken(CLI::App& app, GlobalOptions& g, int* exit_code) {
  auto* token = app.add_subcommand("token", "Mint, inspect, attenuate, verify and revoke tokens");
  token->require_subcommand(1);
  static std::string policy_file, agent, run_id, datalog, rate, token_arg, block, root_key, note;
  static std::string kind, target, principal;
  static std::vector<std::string> syscalls, prefixes, labels;
  static int64_t ttl_ms = 0, max_uses = 0;

  // --- mint ---
  auto* mint =
      token->add_subcommand("mint", "Mint a token: a grant for a policy agent, or Datalog");
  mint->add_option("--policy", policy_file, "Policy file")->required();
  auto* agent_opt = mint->add_option("--agent", agent, "Policy agent to grant to");
  auto* datalog_opt =
      mint->add_option("--datalog", datalog, "Authority block in Datalog text (@file, - stdin)");
  agent_opt->excludes(datalog_opt);
  mint->add_option("--run", run_id, "Bind the token to this run");
  mint->add_option("--syscall", syscalls, "Grant only these syscall kinds (repeatable)");
  mint->add_option("--resource-prefix", prefixes, "Only targets under this prefix (repeatable)");
  mint->add_option("--ttl-ms", ttl_ms, "Expire this many milliseconds from now");
  mint->add_option("--max-uses", max_uses, "At most this many uses");
  mint->add_option("--rate", rate, "At most COUNT uses per WINDOW_MS: COUNT/WINDOW_MS");
  mint->callback([&g, exit_code] {
    if (agent.empty() && datalog.empty()) {
      *exit_code = Fail(Status(Reason::kInvalidArgument, "give --agent or --datalog"));
      return;
    }
    const std::filesystem::path dir = ResolveDataDir(g);
    Result<Config> config = LoadConfig(dir);
    if (!config.ok()) {
      *exit_code = Fail(config.status());
      return;
    }
    Result<KernelSession> session =
        KernelSession::Open(dir, policy_file, audit::Durability::kFsync, *config);
    if (!session.ok()) {
      *exit_code = Fail(session.status());
      return;
    }
    Result<std::string> t = [&]() -> Result<std::string> {
      if (agent.empty()) {
        CUSTOS_ASSIGN_OR_RETURN(std::string text, ReadArg(datalog));
        return session->kernel().MintToken(text);
      }
      kernel::GrantOptions o;
      o.syscalls = syscalls;
      o.resource_prefixes = prefixes;
      o.ttl_ms = ttl_ms;
      o.max_uses = max_uses;
      if (!rate.empty()) {
        CUSTOS_RETURN_IF_ERROR(ParseRate(rate, &o));
      }
      return session->kernel().Grant(agent, run_id, o);
    }();
    if (!t.ok()) {
      *exit_code = Fail(t.status());
      return;
    }
    std::printf("%s\n", t->c_str());
    *exit_code = 0;
  });

  // --- inspect ---
  auto* inspect = token->add_subcommand("inspect", "Print a token's blocks as Datalog");
  inspect->add_option("TOKEN", token_arg, "Token text (@file, - stdin)")->required();
  inspect->add_option("--root-key", root_key, "Root public key (default: DATA_DIR's)");
  inspect->callback([&g, exit_code] {
    Result<std::string> text = ReadArg(token_arg);
    Result<caps::PublicKey> root = RootKey(g, root_key);
    Result<std::vector<uint8_t>> bytes =
        text.ok() ? caps::DecodeToken(*text) : Result<std::vector<uint8_t>>(text.status());
    if (!root.ok() || !bytes.ok()) {
      *exit_code = Fail(!root.ok() ? root.status() : bytes.status());
      return;
    }
    Result<caps::Biscuit> b = caps::Biscuit::FromBytes(*bytes, *root);
    if (!b.ok()) {
      *exit_code = Fail(b.status());
      return;
    }
    std::printf("root key: %s\nroot key id: %s\nsealed: %s\nbytes: %zu\n", root->ToString().c_str(),
                b->root_key_id() ? std::to_string(*b->root_key_id()).c_str() : "none",
                b->sealed() ? "yes" : "no", bytes->size());
    const std::vector<std::string> ids = b->RevocationIds();
    for (size_t i = 0; i < b->blocks().size(); ++i) {
      Result<std::string> code = caps::PrintBlock(*b, i);
      std::printf("\nblock %zu%s\nrevocation id: %s\n%s", i, i == 0 ? " (authority)" : "",
                  ids[i].c_str(), code.ok() ? code->c_str() : "(does not print)\n");
    }
    *exit_code = 0;
  });

  // --- attenuate ---
  auto* attenuate = token->add_subcommand("attenuate", "Append a block (offline)");
  attenuate->add_option("TOKEN", token_arg, "Token text (@file, - stdin)")->required();
  attenuate->add_option("--block", block, "The block in Datalog text (@file)")->required();
  attenuate->add_option("--root-key", root_key, "Root public key (default: DATA_DIR's)");
  attenuate->callback([&g, exit_code] {
    Result<std::vector<uint8_t>> out = [&]() -> Result<std::vector<uint8_t>> {
      CUSTOS_ASSIGN_OR_RETURN(std::string text, ReadArg(token_arg));
      CUSTOS_ASSIGN_OR_RETURN(std::string code, ReadArg(block));
      CUSTOS_ASSIGN_OR_RETURN(caps::PublicKey root, RootKey(g, root_key));
      CUSTOS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, caps::DecodeToken(text));
      return caps::Attenuate(bytes, root, code);
    }();
    if (!out.ok()) {
      *exit_code = Fail(out.status());
      return;
    }
    std::printf("%s\n", caps::EncodeToken(*out).c_str());
    *exit_code = 0;
  });

  // --- verify ---
  auto* verify = token->add_subcommand(
      "verify", "Verify a token; with --kind, authorize a request as the kernel would");
  verify->add_option("TOKEN", token_arg, "Token text (@file, - stdin)")->required();
  verify->add_option("--root-key", root_key, "Root public key (default: DATA_DIR's)");
  verify->add_option("--kind", kind, "Request: syscall kind (operation)");
  verify->add_option("--target", target, "Request: canonical target (resource)");
  verify->add_option("--agent", agent, "Request: agent");
  verify->add_option("--principal", principal, "Request: policy agent (default: --agent)");
  verify->add_option("--run", run_id, "Request: run");
  verify->add_option("--label", labels, "Request: an input label (repeatable)");
  verify->callback([&g, exit_code] {
    Result<std::string> text = ReadArg(token_arg);
    Result<caps::PublicKey> root = RootKey(g, root_key);
    if (!text.ok() || !root.ok()) {
      *exit_code = Fail(!text.ok() ? text.status() : root.status());
      return;
    }
    Result<std::shared_ptr<const kernel::VerifiedToken>> v = kernel::VerifyToken(*text, *root);
    if (!v.ok()) {
      *exit_code = Fail(v.status());
      return;
    }
    std::printf("signature: ok (%zu blocks, root %s)\n", (*v)->revocation_ids.size(),
                root->ToString().c_str());
    if (kind.empty()) {
      *exit_code = 0;
      return;
    }
    kernel::TokenRequest r;
    r.operation = kind;
    r.resource = target;
    r.agent = agent;
    r.principal = principal.empty() ? agent : principal;
    r.run = run_id;
    r.now_ms = SystemClock().NowMillis();
    r.labels = labels;
    Status st = kernel::AuthorizeToken(**v, r);
    if (!st.ok()) {
      *exit_code = Fail(st);
      return;
    }
    std::printf("authorized: %s %s\n", kind.c_str(), target.c_str());
    *exit_code = 0;
  });

  // --- revoke ---
  // Through a kernel on DATA_DIR, like mint: the revocation is written to the store every kernel
  // sharing it reads, and recorded in the flight log (a `token.revoke` event) so that replay and
  // audit see it. --policy names the policy in force, whose hash the entry records.
  auto* revoke = token->add_subcommand("revoke", "Revoke a token (its last block) or an id");
  revoke->add_option("TOKEN_OR_ID", token_arg, "Token text (@file, - stdin) or revocation id")
      ->required();
  revoke->add_option("--policy", policy_file, "Policy file (its hash is recorded)")->required();
  revoke->add_option("--note", note, "Why (kept in the store)");
  revoke->callback([&g, exit_code] {
    Result<std::string> text = ReadArg(token_arg);
    if (!text.ok()) {
      *exit_code = Fail(text.status());
      return;
    }
    std::string id = *text;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) {
      id.pop_back();
    }
    const std::filesystem::path dir = ResolveDataDir(g);
    Result<Config> config = LoadConfig(dir);
    if (!config.ok()) {
      *exit_code = Fail(config.status());
      return;
    }
    Result<KernelSession> session =
        KernelSession::Open(dir, policy_file, audit::Durability::kFsync, *config);
    Result<std::string> revoked =
        session.ok() ? session->kernel().Revoke(id, note) : Result<std::string>(session.status());
    if (!revoked.ok()) {
      *exit_code = Fail(revoked.status());
      return;
    }
    std::printf("revoked %s\n", revoked->c_str());
    *exit_code = 0;
  });
}

}  // namespace custos::cli
