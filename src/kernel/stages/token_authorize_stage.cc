#include "custos/core/json.h"
#include "custos/crypto/sha256.h"
#include "kernel/context.h"
#include "kernel/services.h"
#include "kernel/stages/stages.h"

namespace custos::kernel {

// The ambient facts of the request (docs/spec/capability-token.md): operation, resource (the
// canonical target), agent, principal, run, time, one label fact per input label, and
// args_digest (SHA-256 of the canonical args) when the token mentions it.
StageVerdict TokenAuthorizeStage::Run(SyscallContext& ctx, Services& s) const {
  if (ctx.token == nullptr) {
    // CapabilityStage always sets it before continuing; reaching here without one is a bug.
    ctx.decision = Decision::Deny(std::string(name()),
                                  Status(Reason::kInternal, "no verified token in the context"));
    return StageVerdict::kDeny;
  }
  TokenRequest r;
  r.operation = SyscallName(ctx.call.kind);
  r.resource = ctx.target.empty() ? std::string_view(ctx.call.target) : ctx.target;
  r.agent = ctx.call.agent;
  r.principal = ctx.principal;
  r.run = ctx.call.run;
  r.now_ms = ctx.now_ms;
  r.labels = ctx.input_labels.Names();
  if (ctx.token->wants_args_digest) {
    Result<std::string> canonical = CanonicalJson(ctx.call.args);
    if (!canonical.ok()) {
      ctx.decision = Decision::Deny(std::string(name()), canonical.status());
      return StageVerdict::kDeny;
    }
    r.args_digest = crypto::Sha256(*canonical).Hex();
  }
  if (Status st = s.tokens().Authorize(*ctx.token, r); !st.ok()) {
    ctx.decision = Decision::Deny(std::string(name()), std::move(st), "token");
    return StageVerdict::kDeny;
  }
  return StageVerdict::kContinue;
}

}  // namespace custos::kernel
