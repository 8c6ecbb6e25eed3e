// Parse and schema stages: the envelope and each kind's argument schema, checked before anything
// else looks at a request. Every rejection names the field with a JSON pointer.

#include "custos/kernel/syscall.h"

#include <algorithm>
#include <array>

#include "custos/core/encoding.h"

namespace custos::kernel {
namespace {

enum class T : uint8_t { kString, kInt, kBool, kObject, kArray, kAny };

struct ArgSpec {
  std::string_view name;
  T type;
  bool required = false;
};

enum class TargetRule : uint8_t { kRequired, kOptional, kEmpty };

struct KindSchema {
  SyscallKind kind;
  TargetRule target;
  std::vector<ArgSpec> args;
};

// One row per syscall kind: what `target` must be and which args exist. Anything else is an
// unknown field (denied, not ignored).
const std::vector<KindSchema>& Schemas() {
  static const std::vector<KindSchema> kSchemas = {
      {SyscallKind::kModelCall,
       TargetRule::kRequired,
       {{"messages", T::kArray},
        {"prompt", T::kString},
        {"max_tokens", T::kInt},
        {"temperature", T::kAny}}},
      {SyscallKind::kContextRead, TargetRule::kRequired, {{"offset", T::kInt}, {"limit", T::kInt}}},
      {SyscallKind::kToolDescribe, TargetRule::kRequired, {}},
      {SyscallKind::kToolInvoke, TargetRule::kRequired, {{"arguments", T::kObject}}},
      {SyscallKind::kToolResponse, TargetRule::kRequired, {{"content", T::kString, true}}},
      {SyscallKind::kSecretOpen, TargetRule::kRequired, {{"destination", T::kString}}},
      {SyscallKind::kNetworkSend,
       TargetRule::kRequired,
       {{"method", T::kString},
        {"headers", T::kObject},
        {"body", T::kString},
        {"max_bytes", T::kInt}}},
      {SyscallKind::kFileRead, TargetRule::kRequired, {{"max_bytes", T::kInt}}},
      {SyscallKind::kFileWrite,
       TargetRule::kRequired,
       {{"content", T::kString}, {"mode", T::kString}}},
      {SyscallKind::kFilePatch,
       TargetRule::kRequired,
       {{"diff", T::kString}, {"edits", T::kArray}}},
      {SyscallKind::kMemoryAlloc,
       TargetRule::kRequired,
       {{"value", T::kAny, true}, {"id", T::kString}}},
      {SyscallKind::kMemoryRead, TargetRule::kRequired, {}},
      {SyscallKind::kMemoryWrite,
       TargetRule::kRequired,
       {{"value", T::kAny}, {"patch", T::kArray}, {"expected_version", T::kInt}}},
      {SyscallKind::kMemoryDelete, TargetRule::kRequired, {{"expected_version", T::kInt}}},
      {SyscallKind::kMemoryQuery, TargetRule::kRequired, {{"limit", T::kInt}}},
      {SyscallKind::kMemoryBatch, TargetRule::kEmpty, {{"ops", T::kArray, true}}},
      {SyscallKind::kHumanApprove,
       TargetRule::kOptional,
       {{"question", T::kString, true}, {"declassify", T::kArray}}},
      {SyscallKind::kAgentSpawn,
       TargetRule::kRequired,
       {{"syscalls", T::kArray, true},
        {"budget", T::kObject},
        {"resources", T::kArray},
        {"ttl_ms", T::kInt}}},
      {SyscallKind::kAgentSend, TargetRule::kRequired, {{"message", T::kString}}},
      {SyscallKind::kAgentRecv, TargetRule::kEmpty, {}},
      {SyscallKind::kAuditCommit, TargetRule::kEmpty, {}},
      {SyscallKind::kAssert,
       TargetRule::kRequired,
       {{"labels", T::kArray},
        {"resource", T::kString},
        {"at_least", T::kInt},
        {"sha256", T::kString}}},
  };
  return kSchemas;
}

const KindSchema& SchemaOf(SyscallKind k) {
  for (const KindSchema& s : Schemas()) {
    if (s.kind == k)
      return s;
  }
  CUSTOS_CHECK(false);  // every kind has a row (tested)
  return Schemas().front();
}

bool TypeMatches(const Json& v, T t) {
  switch (t) {
    case T::kString:
      return v.is_string();
    case T::kInt:
      return v.is_number_integer();
    case T::kBool:
      return v.is_boolean();
    case T::kObject:
      return v.is_object();
    case T::kArray:
      return v.is_array();
    case T::kAny:
      return true;
  }
  return false;
}

std::string_view TypeName(T t) {
  switch (t) {
    case T::kString:
      return "a string";
    case T::kInt:
      return "an integer";
    case T::kBool:
      return "a boolean";
    case T::kObject:
      return "an object";
    case T::kArray:
      return "an array";
    case T::kAny:
      return "any value";
  }
  return "?";
}

// Names: agent, run and id are identifiers that end up in logs, file names and SQL keys.
bool IsIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 128)
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':';
  });
}

Status Violation(std::string msg, std::string at) {
  return Status(Reason::kSchemaViolation, std::move(msg), std::move(at));
}

Result<std::string> RequireString(const Json& j, std::string_view key, bool required) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required)
      return Violation("missing required field '" + std::string(key) + "'", "/" + std::string(key));
    return std::string();
  }
  if (!it->is_string()) {
    return Violation("field '" + std::string(key) + "' must be a string", "/" + std::string(key));
  }
  return it->get<std::string>();
}

}  // namespace

Status ValidateSyscall(const Syscall& s) {
  if (static_cast<size_t>(s.kind) >= static_cast<size_t>(kSyscallKindCount)) {
    return Status(Reason::kUnknownSyscall,
                  "syscall kind " + std::to_string(static_cast<int>(s.kind)) + " is unknown",
                  "/kind");
  }
  if (s.v != kSyscallVersion) {
    return Status(
        Reason::kUnsupportedVersion,
        "syscall version " + std::to_string(s.v) + " is not supported (this kernel speaks 1)",
        "/v");
  }
  if (!IsIdentifier(s.agent)) {
    return Violation("agent must be 1-128 characters of [A-Za-z0-9_.:-]", "/agent");
  }
  if (!IsIdentifier(s.run))
    return Violation("run must be 1-128 characters of [A-Za-z0-9_.:-]", "/run");
  if (!s.id.empty() && !IsIdentifier(s.id)) {
    return Violation("id must be 1-128 characters of [A-Za-z0-9_.:-]", "/id");
  }
  if (s.token.size() > 16384)
    return Status(Reason::kPayloadTooLarge, "token exceeds 16384 bytes", "/token");
  if (s.intent.size() > 4096)
    return Status(Reason::kPayloadTooLarge, "intent exceeds 4096 bytes", "/intent");

  const KindSchema& schema = SchemaOf(s.kind);
  if (s.target.size() > kMaxTargetBytes) {
    return Status(Reason::kPayloadTooLarge, "target exceeds 4096 bytes", "/target");
  }
  if (schema.target == TargetRule::kRequired && s.target.empty()) {
    return Violation(std::string(SyscallName(s.kind)) + " needs a non-empty target", "/target");
  }
  if (schema.target == TargetRule::kEmpty && !s.target.empty()) {
    return Violation(std::string(SyscallName(s.kind)) + " takes no target", "/target");
  }
  if (s.target.find('\0') != std::string::npos) {
    return Status(Reason::kInvalidArgument, "target contains a NUL byte", "/target");
  }
  if (!s.args.is_object())
    return Violation("field 'args' must be an object", "/args");
  for (auto it = s.args.begin(); it != s.args.end(); ++it) {
    auto spec = std::find_if(schema.args.begin(), schema.args.end(),
                             [&](const ArgSpec& a) { return a.name == it.key(); });
    const std::string at = "/args/" + JsonPointerToken(it.key().substr(0, 64));
    if (spec == schema.args.end()) {
      return Status(
          Reason::kUnknownField,
          std::string(SyscallName(s.kind)) + " has no argument '" + it.key().substr(0, 64) + "'",
          at);
    }
    if (!TypeMatches(it.value(), spec->type)) {
      return Violation("argument '" + it.key() + "' must be " + std::string(TypeName(spec->type)),
                       at);
    }
  }
  for (const ArgSpec& spec : schema.args) {
    if (spec.required && !s.args.contains(spec.name)) {
      return Violation(
          std::string(SyscallName(s.kind)) + " needs argument '" + std::string(spec.name) + "'",
          "/args/" + std::string(spec.name));
    }
  }
  if (s.inputs.size() > kMaxInputs) {
    return Status(Reason::kPayloadTooLarge, "more than 64 inputs", "/inputs");
  }
  return Status::Ok();
}

Result<Syscall> ParseSyscall(const Json& j, std::string* kind_name) {
  if (!j.is_object())
    return Violation("a syscall must be a JSON object", "");
  static constexpr std::array<std::string_view, 11> kFields = {
      "v", "id", "agent", "run", "kind", "target", "args", "inputs", "labels", "token", "intent"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(kFields.begin(), kFields.end(), it.key()) == kFields.end()) {
      return Status(Reason::kUnknownField, "unknown field '" + it.key().substr(0, 64) + "'",
                    "/" + JsonPointerToken(it.key().substr(0, 64)));
    }
  }
  Syscall s;
  if (auto v = j.find("v"); v != j.end()) {
    if (!v->is_number_integer())
      return Violation("field 'v' must be an integer", "/v");
    if (v->get<int64_t>() != kSyscallVersion) {
      return Status(Reason::kUnsupportedVersion,
                    "syscall version " + v->dump() + " is not supported (this kernel speaks 1)",
                    "/v");
    }
  }
  CUSTOS_ASSIGN_OR_RETURN(std::string kind, RequireString(j, "kind", true));
  if (kind_name != nullptr)
    *kind_name = kind.substr(0, 64);
  std::optional<SyscallKind> k = SyscallFromName(kind);
  if (!k) {
    return Status(Reason::kUnknownSyscall, "unknown syscall kind '" + kind.substr(0, 64) + "'",
                  "/kind");
  }
  s.kind = *k;
  CUSTOS_ASSIGN_OR_RETURN(s.agent, RequireString(j, "agent", true));
  CUSTOS_ASSIGN_OR_RETURN(s.run, RequireString(j, "run", true));
  CUSTOS_ASSIGN_OR_RETURN(s.id, RequireString(j, "id", false));
  CUSTOS_ASSIGN_OR_RETURN(s.token, RequireString(j, "token", false));
  CUSTOS_ASSIGN_OR_RETURN(s.intent, RequireString(j, "intent", false));
  CUSTOS_ASSIGN_OR_RETURN(
      s.target, RequireString(j, "target", SchemaOf(s.kind).target == TargetRule::kRequired));
  if (auto a = j.find("args"); a != j.end()) {
    if (!a->is_object())
      return Violation("field 'args' must be an object", "/args");
    s.args = *a;
  }
  if (auto in = j.find("inputs"); in != j.end()) {
    if (!in->is_array())
      return Violation("field 'inputs' must be an array of handles", "/inputs");
    if (in->size() > kMaxInputs) {
      return Status(Reason::kPayloadTooLarge, "more than 64 inputs", "/inputs");
    }
    for (size_t i = 0; i < in->size(); ++i) {
      const Json& h = (*in)[i];
      if (!h.is_string())
        return Violation("inputs must be handle strings", "/inputs/" + std::to_string(i));
      s.inputs.push_back(h.get<std::string>());
    }
  }
  if (auto l = j.find("labels"); l != j.end()) {
    Result<labels::LabelSet> ls = labels::LabelSet::FromJson(*l);
    if (!ls.ok())
      return ls.status().WithAtPrefix("/labels");
    s.declared_labels = std::move(ls).value();
  }
  CUSTOS_RETURN_IF_ERROR(ValidateSyscall(s));
  return s;
}

Result<std::string> CanonicalRequest(const Syscall& s) {
  // Keys in byte order: agent, args, id, inputs, intent, kind, labels, run, target, v — the same
  // bytes CanonicalJson(s.ToJson()) gives, without building a JSON tree on the hot path.
  std::string out;
  out.reserve(256 + s.target.size());
  out += "{\"agent\":";
  AppendCanonicalString(s.agent, &out);
  out += ",\"args\":";
  if (s.args.empty()) {
    out += "{}";
  } else {
    CUSTOS_ASSIGN_OR_RETURN(std::string args, CanonicalJson(s.args));
    out += args;
  }
  out += ",\"id\":";
  AppendCanonicalString(s.id, &out);
  if (!s.inputs.empty()) {
    out += ",\"inputs\":[";
    for (size_t i = 0; i < s.inputs.size(); ++i) {
      if (i != 0)
        out += ',';
      AppendCanonicalString(s.inputs[i], &out);
    }
    out += ']';
  }
  if (!s.intent.empty()) {
    out += ",\"intent\":";
    AppendCanonicalString(s.intent, &out);
  }
  out += ",\"kind\":";
  AppendCanonicalString(SyscallName(s.kind), &out);
  if (s.declared_labels) {
    out += ",\"labels\":[";
    bool first = true;
    for (const std::string& n : s.declared_labels->Names()) {
      if (!first)
        out += ',';
      first = false;
      AppendCanonicalString(n, &out);
    }
    out += ']';
  }
  out += ",\"run\":";
  AppendCanonicalString(s.run, &out);
  out += ",\"target\":";
  AppendCanonicalString(s.target, &out);
  out += ",\"v\":";
  out += std::to_string(s.v);
  out += '}';
  if (!IsValidUtf8(out))
    return Status(Reason::kInvalidUtf8, "request holds invalid UTF-8");
  return out;
}

Result<Syscall> ParseSyscallText(std::string_view text, const JsonLimits& limits) {
  CUSTOS_ASSIGN_OR_RETURN(Json j, ParseUntrustedJson(text, limits));
  return ParseSyscall(j);
}

Json Syscall::ToJson() const {
  Json j = {{"v", v},
            {"id", id},
            {"agent", agent},
            {"run", run},
            {"kind", SyscallName(kind)},
            {"target", target},
            {"args", args}};
  if (!inputs.empty())
    j["inputs"] = inputs;
  if (declared_labels)
    j["labels"] = declared_labels->ToJson();
  if (!intent.empty())
    j["intent"] = intent;
  return j;
}

Json SyscallResult::ToJson() const {
  Json d = {{"verdict", VerdictName(decision.verdict)},
            {"stage", decision.stage},
            {"rule", decision.rule},
            {"reason", ReasonName(decision.reason)}};
  if (!decision.explanation.empty())
    d["explanation"] = decision.explanation;
  if (!decision.suggestion.empty())
    d["suggestion"] = decision.suggestion;
  if (!decision.at.empty())
    d["at"] = decision.at;
  Json j = {{"id", id}, {"decision", d}};
  if (handle) {
    j["handle"] = {{"id", handle->id},
                   {"labels", handle->labels.ToJson()},
                   {"sha256", handle->content_hash},
                   {"kind", handle->kind},
                   {"size", handle->size}};
  }
  if (!frame.is_null())
    j["frame"] = frame;
  if (!usage.IsZero()) {
    Json u = Json::object();
    for (int i = 0; i < budget::kResourceCount; ++i) {
      if (usage.v[i] != 0)
        u[std::string(budget::ResourceName(static_cast<budget::Resource>(i)))] = usage.v[i];
    }
    j["usage"] = u;
  }
  j["receipt"] = {{"decision_seq", receipt.decision_seq}, {"decision_hash", receipt.decision_hash}};
  if (receipt.outcome_seq != 0) {
    j["receipt"]["outcome_seq"] = receipt.outcome_seq;
    j["receipt"]["outcome_hash"] = receipt.outcome_hash;
  }
  if (!approval_id.empty())
    j["approval_id"] = approval_id;
  return j;
}

}  // namespace custos::kernel
