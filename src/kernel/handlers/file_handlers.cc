// file.read / file.write / file.patch. The policy decides on the canonical path (symlinks, `..`
// and /proc tricks resolved by effects::CanonicalPath); the effect then opens exactly that path
// and re-checks the opened file against it, so a swap between decision and use fails closed.

#include "custos/effects/file_io.h"
#include "custos/effects/patch.h"
#include "custos/effects/path.h"
#include "kernel/environment.h"
#include "kernel/handlers/handlers.h"

namespace custos::kernel {
namespace {

// Local files are the user's: private, trusted, and they say where they came from.
labels::LabelSet FileLabels() {
  return labels::LabelSet(labels::Integrity::kTrusted, labels::Confidentiality::kPrivate,
                          {"source:file"});
}

size_t MaxBytes(const SyscallContext& ctx, const Services& s) {
  const int64_t asked = ctx.call.args.value("max_bytes", int64_t(s.options().max_effect_bytes));
  return static_cast<size_t>(std::clamp<int64_t>(asked, 0, int64_t(s.options().max_effect_bytes)));
}

class FileReadHandler final : public EffectHandler {
 public:
  Status Resolve(SyscallContext& ctx, Services& s) const override {
    CUSTOS_ASSIGN_OR_RETURN(ctx.target,
                            s.env().CanonicalPath(ctx, ctx.call.target, /*must_exist=*/true));
    return Status::Ok();
  }

  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    CUSTOS_ASSIGN_OR_RETURN(effects::FileData data,
                            effects::ReadFileAt(ctx.target, MaxBytes(ctx, s)));
    EffectOutput out;
    out.kind = "file";
    out.labels = FileLabels();
    out.meta = {{"path", ctx.target}};
    out.frame = TextFrame(data.contents, s.options().max_frame_bytes);
    out.frame["path"] = ctx.target;
    out.content = std::move(data.contents);
    return out;
  }
};

// The bytes a write or patch puts on disk come from the call (raw, labeled by declaration) or
// from exactly one input handle.
Result<std::string> WritePayload(const SyscallContext& ctx, Services& s, const char* arg) {
  if (ctx.call.args.contains(arg))
    return ctx.call.args.at(arg).get<std::string>();
  if (ctx.input_handles.size() == 1)
    return s.Unseal(ctx.input_handles[0]);
  return Status(Reason::kSchemaViolation,
                std::string("needs '") + arg + "' or exactly one input handle",
                std::string("/args/") + arg);
}

class FileWriteHandler final : public EffectHandler {
 public:
  Status Resolve(SyscallContext& ctx, Services& s) const override {
    CUSTOS_ASSIGN_OR_RETURN(ctx.target,
                            s.env().CanonicalPath(ctx, ctx.call.target, /*must_exist=*/false));
    const std::string mode = ctx.call.args.value("mode", "overwrite");
    if (mode != "overwrite" && mode != "create" && mode != "append") {
      return Status(Reason::kSchemaViolation, "mode is one of create | overwrite | append",
                    "/args/mode");
    }
    return Status::Ok();
  }
  bool CarriesRawData(const SyscallContext& ctx) const override {
    return ctx.call.args.contains("content");
  }
  // The bytes put on disk leave the kernel: the labels stage scans them for secret values
  // (INV-6), whether they come from the call or from the input handle.
  void Egress(const SyscallContext& ctx, Services& s, std::string* out) const override {
    Result<std::string> payload = WritePayload(ctx, s, "content");
    if (payload.ok())
      *out += *payload;
  }

  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    CUSTOS_ASSIGN_OR_RETURN(std::string content, WritePayload(ctx, s, "content"));
    if (content.size() > s.options().max_effect_bytes) {
      return Status(Reason::kPayloadTooLarge, "content exceeds the effect size cap",
                    "/args/content");
    }
    const std::string mode = ctx.call.args.value("mode", "overwrite");
    const effects::WriteMode m = mode == "create"   ? effects::WriteMode::kCreate
                                 : mode == "append" ? effects::WriteMode::kAppend
                                                    : effects::WriteMode::kOverwrite;
    CUSTOS_RETURN_IF_ERROR(effects::WriteFileAt(ctx.target, content, m));
    EffectOutput out;
    out.frame = {{"path", ctx.target}, {"written", content.size()}, {"mode", mode}};
    return out;
  }
};

class FilePatchHandler final : public EffectHandler {
 public:
  Status Resolve(SyscallContext& ctx, Services& s) const override {
    CUSTOS_ASSIGN_OR_RETURN(ctx.target,
                            s.env().CanonicalPath(ctx, ctx.call.target, /*must_exist=*/true));
    if (ctx.call.args.contains("diff") == ctx.call.args.contains("edits")) {
      return Status(Reason::kSchemaViolation, "file.patch needs exactly one of 'diff' or 'edits'",
                    "/args");
    }
    return Status::Ok();
  }
  bool CarriesRawData(const SyscallContext&) const override { return true; }
  // The new text leaves the kernel (see FileWriteHandler::Egress).
  void Egress(const SyscallContext& ctx, Services&, std::string* out) const override {
    const Json& a = ctx.call.args;
    if (a.contains("diff"))
      *out += a["diff"].get<std::string>();
    if (a.contains("edits")) {
      for (const Json& e : a["edits"]) {
        if (!e.is_object())
          continue;
        for (const char* k : {"old", "new"}) {
          if (e.contains(k) && e[k].is_string()) {
            *out += e[k].get<std::string>();
            *out += '\n';
          }
        }
      }
    }
  }

  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    CUSTOS_ASSIGN_OR_RETURN(effects::FileData data,
                            effects::ReadFileAt(ctx.target, s.options().max_effect_bytes));
    std::string patched;
    if (ctx.call.args.contains("diff")) {
      CUSTOS_ASSIGN_OR_RETURN(
          patched,
          effects::ApplyUnifiedDiff(data.contents, ctx.call.args.at("diff").get<std::string>()));
    } else {
      std::vector<effects::Edit> edits;
      const Json& e = ctx.call.args.at("edits");
      for (size_t i = 0; i < e.size(); ++i) {
        const std::string at = "/args/edits/" + std::to_string(i);
        if (!e[i].is_object() || !e[i].contains("old") || !e[i].contains("new") ||
            !e[i]["old"].is_string() || !e[i]["new"].is_string() || e[i].size() != 2) {
          return Status(Reason::kSchemaViolation, "an edit is {\"old\": string, \"new\": string}",
                        at);
        }
        edits.push_back({e[i]["old"].get<std::string>(), e[i]["new"].get<std::string>()});
      }
      CUSTOS_ASSIGN_OR_RETURN(patched, effects::ApplyEdits(data.contents, edits));
    }
    CUSTOS_RETURN_IF_ERROR(
        effects::WriteFileAt(ctx.target, patched, effects::WriteMode::kOverwrite));
    EffectOutput out;
    out.frame = {{"path", ctx.target},
                 {"size_before", data.contents.size()},
                 {"size_after", patched.size()}};
    return out;
  }
};

}  // namespace

std::unique_ptr<EffectHandler> MakeFileReadHandler() { return std::make_unique<FileReadHandler>(); }
std::unique_ptr<EffectHandler> MakeFileWriteHandler() {
  return std::make_unique<FileWriteHandler>();
}
std::unique_ptr<EffectHandler> MakeFilePatchHandler() {
  return std::make_unique<FilePatchHandler>();
}

}  // namespace custos::kernel
