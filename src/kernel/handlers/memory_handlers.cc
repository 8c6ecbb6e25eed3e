// memory.*: a typed heap of versioned JSON objects per run. Writes are compare-and-swap on the
// version when the caller gives expected_version; JSON-Patch writes re-read and retry; a batch is
// one transaction. An object's labels only rise: a write joins the writer's input labels into the
// object's, and a read returns a handle carrying the object's labels (INV-5).

#include "custos/crypto/random.h"
#include "kernel/handlers/handlers.h"

namespace custos::kernel {
namespace {

constexpr int kPatchRetries = 8;
constexpr int64_t kMaxQuery = 1000;

Json ObjectJson(const store::HeapObject& o) {
  return {{"id", o.id},
          {"type", o.type},
          {"version", o.version},
          {"value", o.value},
          {"labels", o.labels}};
}

bool IsObjectId(std::string_view s) {
  if (s.empty() || s.size() > 128)
    return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.' || c == ':')) {
      return false;
    }
  }
  return true;
}

Result<labels::LabelSet> StoredLabels(const Json& j) {
  Result<labels::LabelSet> l = labels::LabelSet::FromJson(j);
  if (!l.ok())
    return Status(Reason::kInternal, "stored object labels are unreadable");
  return l;
}

class MemoryHandler final : public EffectHandler {
 public:
  explicit MemoryHandler(SyscallKind kind) : kind_(kind) {}

  Status Resolve(SyscallContext& ctx, Services&) const override {
    ctx.target = ctx.call.target;
    if (kind_ != SyscallKind::kMemoryBatch && !IsObjectId(ctx.target)) {
      return Status(Reason::kInvalidArgument,
                    "memory ids and types are 1-128 characters of [A-Za-z0-9_.:-]", "/target");
    }
    return Status::Ok();
  }

  bool CarriesRawData(const SyscallContext& ctx) const override {
    return kind_ == SyscallKind::kMemoryAlloc || kind_ == SyscallKind::kMemoryWrite ||
           (kind_ == SyscallKind::kMemoryBatch && ctx.call.args.contains("ops"));
  }

  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    switch (kind_) {
      case SyscallKind::kMemoryAlloc:
        return Alloc(ctx, s);
      case SyscallKind::kMemoryRead:
        return Read(ctx, s);
      case SyscallKind::kMemoryWrite:
        return Write(ctx, s);
      case SyscallKind::kMemoryDelete:
        return Delete(ctx, s);
      case SyscallKind::kMemoryQuery:
        return Query(ctx, s);
      case SyscallKind::kMemoryBatch:
        return Batch(ctx, s);
      default:
        break;
    }
    return Status(Reason::kInternal, "memory handler registered for a non-memory syscall");
  }

 private:
  static Result<EffectOutput> Written(const std::vector<store::HeapObject>& objs) {
    EffectOutput out;
    Json list = Json::array();
    for (const auto& o : objs)
      list.push_back({{"id", o.id}, {"version", o.version}});
    out.frame = objs.size() == 1 ? list[0] : Json{{"objects", list}};
    return out;
  }

  Result<EffectOutput> Alloc(SyscallContext& ctx, Services& s) const {
    store::HeapOp op;
    op.object.type = ctx.target;
    op.object.id = ctx.call.args.value("id", crypto::RandomId("m_"));
    if (!IsObjectId(op.object.id)) {
      return Status(Reason::kInvalidArgument, "memory ids are 1-128 characters of [A-Za-z0-9_.:-]",
                    "/args/id");
    }
    op.object.value = ctx.call.args.at("value");
    op.object.labels = ctx.input_labels.ToJson();
    op.expected_version = 0;  // must not exist
    CUSTOS_ASSIGN_OR_RETURN(auto objs, s.store().HeapApply(ctx.call.run, {op}, ctx.now_ms));
    return Written(objs);
  }

  Result<EffectOutput> Read(SyscallContext& ctx, Services& s) const {
    CUSTOS_ASSIGN_OR_RETURN(store::HeapObject o, s.store().HeapGet(ctx.call.run, ctx.target));
    CUSTOS_ASSIGN_OR_RETURN(labels::LabelSet l, StoredLabels(o.labels));
    EffectOutput out;
    out.kind = "memory";
    out.content = o.value.dump();
    out.labels = l;
    out.meta = {{"object", o.id}, {"version", o.version}};
    out.frame = ObjectJson(o);
    return out;
  }

  Result<EffectOutput> Write(SyscallContext& ctx, Services& s) const {
    const Json& args = ctx.call.args;
    if (args.contains("value") == args.contains("patch")) {
      return Status(Reason::kSchemaViolation,
                    "memory.write needs exactly one of 'value' or 'patch'", "/args");
    }
    const bool cas = args.contains("expected_version");
    for (int attempt = 0; attempt < kPatchRetries; ++attempt) {
      CUSTOS_ASSIGN_OR_RETURN(store::HeapObject cur, s.store().HeapGet(ctx.call.run, ctx.target));
      store::HeapOp op;
      op.object = cur;
      op.expected_version = cas ? args.at("expected_version").get<int64_t>() : cur.version;
      if (args.contains("value")) {
        op.object.value = args.at("value");
      } else {
        try {
          op.object.value = cur.value.patch(args.at("patch"));
        } catch (const nlohmann::json::exception& e) {
          return Status(Reason::kInvalidArgument,
                        std::string("JSON Patch does not apply: ") + e.what(), "/args/patch");
        }
      }
      CUSTOS_ASSIGN_OR_RETURN(labels::LabelSet l, StoredLabels(cur.labels));
      op.object.labels = l.Join(ctx.input_labels).ToJson();  // labels only rise
      Result<std::vector<store::HeapObject>> r =
          s.store().HeapApply(ctx.call.run, {op}, ctx.now_ms);
      if (r.ok())
        return Written(*r);
      // Without an explicit expected_version, a concurrent writer just means read again.
      if (cas || r.status().reason() != Reason::kVersionConflict)
        return r.status();
    }
    return Status(Reason::kVersionConflict, "object " + ctx.target + " kept changing; gave up");
  }

  Result<EffectOutput> Delete(SyscallContext& ctx, Services& s) const {
    store::HeapOp op;
    op.kind = store::HeapOp::Kind::kDelete;
    op.object.id = ctx.target;
    op.expected_version = ctx.call.args.value("expected_version", int64_t{-1});
    CUSTOS_RETURN_IF_ERROR(s.store().HeapApply(ctx.call.run, {op}, ctx.now_ms));
    EffectOutput out;
    out.frame = {{"id", ctx.target}, {"deleted", true}};
    return out;
  }

  Result<EffectOutput> Query(SyscallContext& ctx, Services& s) const {
    const int64_t limit =
        std::clamp<int64_t>(ctx.call.args.value("limit", int64_t{100}), 1, kMaxQuery);
    CUSTOS_ASSIGN_OR_RETURN(auto objs, s.store().HeapQuery(ctx.call.run, ctx.target, limit));
    EffectOutput out;
    Json list = Json::array();
    labels::LabelSet joined;
    for (const auto& o : objs) {
      CUSTOS_ASSIGN_OR_RETURN(labels::LabelSet l, StoredLabels(o.labels));
      joined.JoinWith(l);
      list.push_back(ObjectJson(o));
    }
    out.kind = "memory";
    out.content = list.dump();
    out.labels = joined;
    out.frame = {{"objects", list}};
    return out;
  }

  Result<EffectOutput> Batch(SyscallContext& ctx, Services& s) const {
    const Json& ops_json = ctx.call.args.at("ops");
    if (ops_json.size() > 256) {
      return Status(Reason::kPayloadTooLarge, "a batch has at most 256 operations", "/args/ops");
    }
    std::vector<store::HeapOp> ops;
    for (size_t i = 0; i < ops_json.size(); ++i) {
      const Json& o = ops_json[i];
      const std::string at = "/args/ops/" + std::to_string(i);
      if (!o.is_object())
        return Status(Reason::kSchemaViolation, "an op must be an object", at);
      for (auto it = o.begin(); it != o.end(); ++it) {
        if (it.key() != "op" && it.key() != "id" && it.key() != "type" && it.key() != "value" &&
            it.key() != "expected_version") {
          return Status(Reason::kUnknownField, "unknown op field '" + it.key().substr(0, 64) + "'",
                        at + "/" + JsonPointerToken(it.key().substr(0, 64)));
        }
      }
      store::HeapOp op;
      const std::string kind = o.value("op", "");
      if (kind == "delete") {
        op.kind = store::HeapOp::Kind::kDelete;
      } else if (kind != "put") {
        return Status(Reason::kSchemaViolation, "op must be \"put\" or \"delete\"", at + "/op");
      }
      if (!o.contains("id") || !o["id"].is_string() || !IsObjectId(o["id"].get<std::string>())) {
        return Status(Reason::kSchemaViolation, "op needs an id of [A-Za-z0-9_.:-]", at + "/id");
      }
      op.object.id = o["id"];
      if (op.kind == store::HeapOp::Kind::kPut) {
        if (!o.contains("type") || !o["type"].is_string() ||
            !IsObjectId(o["type"].get<std::string>())) {
          return Status(Reason::kSchemaViolation, "put needs a type", at + "/type");
        }
        if (!o.contains("value"))
          return Status(Reason::kSchemaViolation, "put needs a value", at + "/value");
        op.object.type = o["type"];
        op.object.value = o["value"];
        // Labels only rise: an existing object's labels are joined in.
        labels::LabelSet l = ctx.input_labels;
        Result<store::HeapObject> cur = s.store().HeapGet(ctx.call.run, op.object.id);
        if (cur.ok()) {
          CUSTOS_ASSIGN_OR_RETURN(labels::LabelSet old, StoredLabels(cur->labels));
          l.JoinWith(old);
        }
        op.object.labels = l.ToJson();
      }
      if (o.contains("expected_version")) {
        if (!o["expected_version"].is_number_integer()) {
          return Status(Reason::kSchemaViolation, "expected_version must be an integer",
                        at + "/expected_version");
        }
        op.expected_version = o["expected_version"];
      }
      ops.push_back(std::move(op));
    }
    CUSTOS_ASSIGN_OR_RETURN(auto objs, s.store().HeapApply(ctx.call.run, ops, ctx.now_ms));
    return Written(objs);
  }

  SyscallKind kind_;
};

}  // namespace

std::unique_ptr<EffectHandler> MakeMemoryHandler(SyscallKind kind) {
  return std::make_unique<MemoryHandler>(kind);
}

}  // namespace custos::kernel
