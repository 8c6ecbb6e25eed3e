#include "kernel/effect_handler.h"
#include "kernel/stages/stages.h"

namespace custos::kernel {

StageVerdict InputsStage::Run(SyscallContext& ctx, Services& s) const {
  ctx.input_handles.reserve(ctx.call.inputs.size());
  for (size_t i = 0; i < ctx.call.inputs.size(); ++i) {
    Result<store::HandleRecord> h = s.LoadHandle(ctx.call.inputs[i], ctx.call.agent, ctx.call.run);
    if (!h.ok()) {
      ctx.decision = Decision::Deny(std::string(name()),
                                    h.status().WithAtPrefix("/inputs/" + std::to_string(i)));
      return StageVerdict::kDeny;
    }
    Result<labels::LabelSet> l = labels::LabelSet::FromJson(h->labels);
    if (!l.ok()) {  // a stored label we cannot read is corruption: fail closed
      ctx.decision = Decision::Deny(
          std::string(name()),
          Status(Reason::kInternal, "stored labels of handle " + h->id + " are unreadable"));
      return StageVerdict::kDeny;
    }
    ctx.input_labels.JoinWith(*l);
    ctx.input_handles.push_back(std::move(h).value());
  }
  // Raw data the caller did not get from the kernel is what it declares, untrusted if nothing.
  ctx.has_raw_data = HandlerFor(ctx.call.kind).CarriesRawData(ctx);
  if (ctx.call.declared_labels) {
    ctx.input_labels.JoinWith(*ctx.call.declared_labels);
  } else if (ctx.has_raw_data) {
    ctx.input_labels.JoinWith(labels::LabelSet::Untrusted());
  }
  return StageVerdict::kContinue;
}

}  // namespace custos::kernel
