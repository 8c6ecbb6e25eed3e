#include "custos/kernel/token_wallet.h"

namespace custos::kernel {

std::string TokenWallet::TokenFor(const std::string& agent, const std::string& run) {
  const std::pair<std::string, std::string> key(agent, run);
  const std::string policy_hash(kernel_.policy()->hash());
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = children_.find(key); it != children_.end()) {
      return it->second;
    }
    if (auto it = granted_.find(key); it != granted_.end() && it->second.first == policy_hash) {
      return it->second.second;
    }
  }
  Result<std::string> token = kernel_.Grant(agent, run);
  if (!token.ok()) {
    return "";
  }
  std::lock_guard<std::mutex> lock(mu_);
  granted_[key] = {policy_hash, *token};
  return *token;
}

void TokenWallet::Attach(Syscall& call) {
  if (call.token.empty() && !call.agent.empty()) {
    call.token = TokenFor(call.agent, call.run);
  }
}

void TokenWallet::Attach(Json& call) {
  if (!call.is_object() || call.contains("token")) {
    return;
  }
  auto agent = call.find("agent");
  if (agent == call.end() || !agent->is_string()) {
    return;
  }
  auto run = call.find("run");
  const std::string run_name = run != call.end() && run->is_string() ? run->get<std::string>() : "";
  std::string token = TokenFor(agent->get<std::string>(), run_name);
  if (!token.empty()) {
    call["token"] = std::move(token);
  }
}

void TokenWallet::Learn(const std::string& kind, const std::string& run,
                        const SyscallResult& result) {
  if (kind != SyscallName(SyscallKind::kAgentSpawn) || !result.decision.allowed() ||
      !result.frame.is_object()) {
    return;
  }
  auto agent = result.frame.find("agent");
  auto token = result.frame.find("token");
  if (agent == result.frame.end() || token == result.frame.end() || !agent->is_string() ||
      !token->is_string()) {
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  children_[{agent->get<std::string>(), run}] = token->get<std::string>();
}

void TokenWallet::Observe(const Syscall& call, const SyscallResult& result) {
  Learn(std::string(SyscallName(call.kind)), call.run, result);
}

void TokenWallet::Observe(const Json& call, const SyscallResult& result) {
  if (!call.is_object()) {
    return;
  }
  auto kind = call.find("kind");
  auto run = call.find("run");
  if (kind == call.end() || !kind->is_string()) {
    return;
  }
  Learn(kind->get<std::string>(),
        run != call.end() && run->is_string() ? run->get<std::string>() : "", result);
}

}  // namespace custos::kernel
