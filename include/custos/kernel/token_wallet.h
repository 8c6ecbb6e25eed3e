#pragma once
// TokenWallet holds the capability tokens of in-process callers so that a library user, the CLI
// (`custos run`, `custos demo`) and tests need not carry tokens by hand: Attach() puts the right
// token on a syscall that has none, Observe() keeps the token agent.spawn returns for a child.
//
// It grants nothing the kernel would not: a policy agent's token comes from Kernel::Grant (its
// `[agents.NAME]` entry, bound to the run), a child's from its spawn. A syscall that already
// carries a token is left alone, so a caller can still present a narrower or foreign token.
// An agent the policy does not define and that no observed spawn created gets no token; the
// kernel then refuses the call (unknown_agent or token_missing) as it would any other.
//
// Thread-safe: one mutex guards the tokens; Kernel is thread-safe.

#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "custos/core/json.h"
#include "custos/kernel/kernel.h"
#include "custos/kernel/syscall.h"

namespace custos::kernel {

class TokenWallet {
 public:
  // REQUIRES: `kernel` outlives the wallet.
  explicit TokenWallet(Kernel& kernel) : kernel_(kernel) {}

  // Sets call.token (or the "token" member of a JSON syscall) when it is empty/absent.
  void Attach(Syscall& call);
  void Attach(Json& call);
  // Learns the child's token from an allowed agent.spawn.
  void Observe(const Syscall& call, const SyscallResult& result);
  void Observe(const Json& call, const SyscallResult& result);

  // The token the wallet would attach for (agent, run), "" if none.
  std::string TokenFor(const std::string& agent, const std::string& run);

 private:
  void Learn(const std::string& kind, const std::string& run, const SyscallResult& result);

  Kernel& kernel_;
  std::mutex mu_;
  // (agent, run) → token. Granted tokens are keyed with the policy hash as well, so a reloaded
  // policy gets freshly minted tokens.
  std::map<std::pair<std::string, std::string>, std::string> children_;
  std::map<std::pair<std::string, std::string>, std::pair<std::string, std::string>> granted_;
};

}  // namespace custos::kernel
