// Kernel-internal syscalls: context.read, secret.open, tool.describe, tool.response,
// human.approve, audit.commit and assert. None reaches outside the kernel, but each is decided and
// recorded like any other.

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "custos/audit/checkpoint.h"
#include "custos/audit/merkle.h"
#include "custos/crypto/random.h"
#include "kernel/approval.h"
#include "kernel/handlers/handlers.h"

namespace custos::kernel {
namespace {

bool IsSecret(const labels::LabelSet& l) {
  return l.confidentiality() == labels::Confidentiality::kSecret;
}

class ContextReadHandler final : public EffectHandler {
 public:
  // The handle being read is the call's first input: its labels flow into the decision and onto
  // the result, and a secret handle is refused here, before anything is recorded as allowed.
  Status Resolve(SyscallContext& ctx, Services& s) const override {
    ctx.target = ctx.call.target;
    CUSTOS_ASSIGN_OR_RETURN(store::HandleRecord h,
                            s.LoadHandle(ctx.target, ctx.call.agent, ctx.call.run));
    CUSTOS_ASSIGN_OR_RETURN(labels::LabelSet l, labels::LabelSet::FromJson(h.labels));
    if (IsSecret(l) || h.kind == "secret") {
      return Status(Reason::kSecretNotAllowed,
                    "handle " + h.id +
                        " is secret: its bytes are never returned, only used at an allowed effect "
                        "(e.g. a network.send header)",
                    "/target");
    }
    ctx.input_labels.JoinWith(l);
    ctx.input_handles.push_back(std::move(h));
    return Status::Ok();
  }

  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    const store::HandleRecord& h = ctx.input_handles.front();
    CUSTOS_ASSIGN_OR_RETURN(std::string content, s.Unseal(h));
    const int64_t max = static_cast<int64_t>(s.options().max_frame_bytes);
    const int64_t offset = std::max<int64_t>(0, ctx.call.args.value("offset", int64_t{0}));
    const int64_t limit = std::clamp<int64_t>(ctx.call.args.value("limit", max), 0, max);
    std::string_view view(content);
    view = view.substr(std::min<size_t>(offset, view.size()), limit);
    EffectOutput out;
    out.handle = h;
    out.frame = TextFrame(view, s.options().max_frame_bytes);
    out.frame["offset"] = offset;
    out.frame["total"] = content.size();
    out.frame["labels"] = h.labels;
    return out;
  }
};

class SecretOpenHandler final : public EffectHandler {
 public:
  Status Resolve(SyscallContext& ctx, Services&) const override {
    ctx.target = ctx.call.target;
    ctx.destination = ctx.call.args.value("destination", "");
    return Status::Ok();
  }

  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    std::shared_ptr<const SecretVault> vault = s.vault();
    const std::string* value = vault->Find(ctx.target);
    if (value == nullptr) {
      return Status(Reason::kNotFound, "secret '" + ctx.target + "' has no readable value");
    }
    labels::LabelSet l(labels::Integrity::kTrusted, labels::Confidentiality::kSecret,
                       {"secret:" + ctx.target});
    CUSTOS_ASSIGN_OR_RETURN(
        store::HandleRecord h,
        s.MintHandle(ctx.call.agent, ctx.call.run, "secret", *value, l,
                     Json{{"secret", ctx.target}, {"destination", ctx.destination}}));
    EffectOutput out;
    out.handle = h;
    // No bytes: the caller gets a handle to substitute at an allowed effect boundary.
    out.frame = {{"secret", ctx.target},
                 {"handle", h.id},
                 {"use", "reference it as {{" + h.id + "}} in a network.send header"}};
    return out;
  }
};

class ToolDescribeHandler final : public EffectHandler {
 public:
  Result<EffectOutput> Perform(SyscallContext& ctx, Services&) const override {
    const policy::ToolSpec* tool = ctx.policy->FindTool(ctx.target);
    if (tool == nullptr) {
      return Status(Reason::kToolNotAllowed, "tool '" + ctx.target + "' is not registered");
    }
    EffectOutput out;
    out.frame = {{"name", tool->name},
                 {"description", tool->description},
                 {"input_schema", tool->input_schema},
                 {"timeout_ms", tool->timeout_ms}};
    return out;
  }
};

class ToolResponseHandler final : public EffectHandler {
 public:
  bool CarriesRawData(const SyscallContext&) const override { return true; }

  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    const std::string& content = ctx.call.args.at("content").get_ref<const std::string&>();
    if (content.size() > s.options().max_effect_bytes) {
      return Status(Reason::kPayloadTooLarge, "tool response exceeds the effect size cap",
                    "/args/content");
    }
    EffectOutput out;
    out.kind = "tool";
    out.content = content;
    // A tool's output is never more trusted than the caller says, and names its source.
    out.labels.AddTag("source:tool:" + ctx.target);
    out.frame = {{"tool", ctx.target}, {"size", content.size()}};
    return out;
  }
};

class HumanApproveHandler final : public EffectHandler {
 public:
  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    std::optional<labels::LabelSet> declassify;
    if (ctx.call.args.contains("declassify")) {
      if (ctx.input_handles.size() != 1) {
        return Status(Reason::kSchemaViolation, "declassify needs exactly one input handle",
                      "/inputs");
      }
      CUSTOS_ASSIGN_OR_RETURN(labels::LabelSet l,
                              labels::LabelSet::FromJson(ctx.call.args.at("declassify")));
      declassify = l;
    }
    store::Approval a;
    a.id = crypto::RandomId("a_");
    a.agent = s.vault()->scanner().Redact(ctx.call.agent);
    a.run = s.vault()->scanner().Redact(ctx.call.run);
    a.syscall = "human.approve";
    a.target = ctx.target;
    a.rule = ctx.decision.rule;
    a.question = s.vault()->scanner().Redact(ctx.call.args.at("question").get<std::string>());
    a.state = "pending";
    a.created_ms = ctx.now_ms;
    a.deadline_ms = ctx.now_ms + ctx.policy->ApprovalTimeoutMs("human.approve");
    CUSTOS_RETURN_IF_ERROR(s.store().PutApproval(a));
    std::string by;
    CUSTOS_RETURN_IF_ERROR(AwaitApproval(a.id, s, &by));
    EffectOutput out;
    out.frame = {{"approval_id", a.id}, {"approved_by", by}};
    if (declassify) {
      // The one place labels go down: a person approved it, and the outcome entry records the
      // old and new labels with the approval id.
      const store::HandleRecord& src = ctx.input_handles[0];
      CUSTOS_ASSIGN_OR_RETURN(std::string content, s.Unseal(src));
      CUSTOS_ASSIGN_OR_RETURN(
          store::HandleRecord h,
          s.MintHandle(ctx.call.agent, ctx.call.run, src.kind, content, *declassify,
                       Json{{"declassified_from", src.id},
                            {"approval_id", a.id},
                            {"from_labels", src.labels}}));
      out.handle = h;
      out.frame["declassified"] = {
          {"from", src.id}, {"to", h.id}, {"labels", declassify->ToJson()}};
    }
    return out;
  }
};

// Flushes the log and has the log writer sign a checkpoint (docs/spec/checkpoint.md) of
// everything logged before this call, from the Merkle tree it keeps (no rehashing); the note is
// stored with every other checkpoint and returned.
class AuditCommitHandler final : public EffectHandler {
 public:
  Result<EffectOutput> Perform(SyscallContext&, Services& s) const override {
    CUSTOS_ASSIGN_OR_RETURN(audit::Appended a, s.log().Flush());
    CUSTOS_ASSIGN_OR_RETURN(audit::SignedCheckpoint cp, s.log().Checkpoint());
    EffectOutput out;
    out.frame = {{"durable_seq", a.seq},
                 {"head_hash", a.hash},
                 {"checkpoint_size", cp.checkpoint.size},
                 {"root", cp.checkpoint.root.Hex()},
                 {"checkpoint", cp.note}};
    return out;
  }
};

class AssertHandler final : public EffectHandler {
 public:
  Status Resolve(SyscallContext& ctx, Services&) const override {
    ctx.target = ctx.call.target;
    const Json& a = ctx.call.args;
    if (ctx.target == "labels_at_most") {
      if (!a.contains("labels"))
        return Status(Reason::kSchemaViolation, "needs 'labels'", "/args/labels");
    } else if (ctx.target == "budget_remaining") {
      if (!a.contains("resource") || !a.contains("at_least")) {
        return Status(Reason::kSchemaViolation, "needs 'resource' and 'at_least'", "/args");
      }
    } else if (ctx.target == "content_hash") {
      if (!a.contains("sha256") || ctx.call.inputs.size() != 1) {
        return Status(Reason::kSchemaViolation, "needs 'sha256' and one input handle",
                      "/args/sha256");
      }
    } else {
      return Status(Reason::kInvalidArgument,
                    "unknown assertion (labels_at_most | budget_remaining | content_hash)",
                    "/target");
    }
    return Status::Ok();
  }

  // Every assertion only reads labels, the ledger or a handle's hash.
  bool ReadOnly(const SyscallContext&) const override { return true; }

  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    const Json& a = ctx.call.args;
    EffectOutput out;
    if (ctx.target == "labels_at_most") {
      CUSTOS_ASSIGN_OR_RETURN(labels::LabelSet bound, labels::LabelSet::FromJson(a.at("labels")));
      if (!bound.Reaches(ctx.input_labels)) {
        return Status(Reason::kAssertionFailed, "inputs are labeled [" +
                                                    ctx.input_labels.ToString() + "], above [" +
                                                    bound.ToString() + "]");
      }
    } else if (ctx.target == "budget_remaining") {
      CUSTOS_ASSIGN_OR_RETURN(budget::AccountStatus st, s.ledger().Get(ctx.account));
      const std::string name = a.at("resource").get<std::string>();
      int r = -1;
      for (int i = 0; i < budget::kResourceCount; ++i) {
        if (budget::ResourceName(static_cast<budget::Resource>(i)) == name)
          r = i;
      }
      if (r < 0)
        return Status(Reason::kInvalidArgument, "unknown budget resource", "/args/resource");
      const int64_t left = st.limit.v[r] - st.used.v[r] - st.reserved.v[r];
      if (left < a.at("at_least").get<int64_t>()) {
        return Status(Reason::kAssertionFailed, name + " has " + std::to_string(left) + " left");
      }
      out.frame = {{"remaining", left}};
    } else {
      const std::string want = a.at("sha256").get<std::string>();
      if (ctx.input_handles[0].content_hash != want) {
        return Status(Reason::kAssertionFailed,
                      "content hash is " + ctx.input_handles[0].content_hash);
      }
    }
    if (out.frame.is_null())
      out.frame = {{"holds", true}};
    return out;
  }
};

}  // namespace

std::unique_ptr<EffectHandler> MakeContextReadHandler() {
  return std::make_unique<ContextReadHandler>();
}
std::unique_ptr<EffectHandler> MakeSecretOpenHandler() {
  return std::make_unique<SecretOpenHandler>();
}
std::unique_ptr<EffectHandler> MakeToolDescribeHandler() {
  return std::make_unique<ToolDescribeHandler>();
}
std::unique_ptr<EffectHandler> MakeToolResponseHandler() {
  return std::make_unique<ToolResponseHandler>();
}
std::unique_ptr<EffectHandler> MakeHumanApproveHandler() {
  return std::make_unique<HumanApproveHandler>();
}
std::unique_ptr<EffectHandler> MakeAuditCommitHandler() {
  return std::make_unique<AuditCommitHandler>();
}
std::unique_ptr<EffectHandler> MakeAssertHandler() { return std::make_unique<AssertHandler>(); }

}  // namespace custos::kernel
