#include "kernel/handlers/secret_refs.h"

#include <vector>

namespace custos::kernel {

namespace {

constexpr std::string_view kRefOpen = "{{h_";
constexpr size_t kHandleIdLen = 28;  // "h_" + 26

struct SecretRef {
  size_t pos;
  std::string id;
};

std::vector<SecretRef> FindRefs(std::string_view v) {
  std::vector<SecretRef> refs;
  for (size_t p = v.find(kRefOpen); p != std::string_view::npos; p = v.find(kRefOpen, p + 1)) {
    if (p + 2 + kHandleIdLen + 2 <= v.size() && v.substr(p + 2 + kHandleIdLen, 2) == "}}")
      refs.push_back({p, std::string(v.substr(p + 2, kHandleIdLen))});
  }
  return refs;
}

// Whether secret handle `h` may be sent to `destination` by this agent (the secret's policy).
Status CheckDestination(const SyscallContext& ctx, const store::HandleRecord& h,
                        const std::string& destination) {
  if (destination.empty())
    return Status(Reason::kSecretNotAllowed, "'" + ctx.target + "' takes no secret handles");
  Result<Json> meta = ParseUntrustedJson(h.meta);
  if (h.kind != "secret" || !meta.ok() || !meta->contains("secret") ||
      !(*meta)["secret"].is_string()) {
    return Status(Reason::kInvalidArgument, "handle " + h.id + " is not a secret handle");
  }
  const std::string name = (*meta)["secret"].get<std::string>();
  policy::Request r;
  r.agent = ctx.principal;
  r.kind = SyscallKind::kSecretOpen;
  r.target = name;
  r.destination = destination;
  Decision d = ctx.policy->Decide(r);
  if (!d.allowed()) {
    return Status(Reason::kSecretNotAllowed,
                  "secret '" + name + "' may not be sent to " + destination + ": " + d.explanation);
  }
  return Status::Ok();
}

Status Walk(Json& v, const SyscallContext& ctx, Services& s, const std::string& destination,
            bool* found) {
  if (v.is_string()) {
    if (v.get_ref<const std::string&>().find(kRefOpen) == std::string::npos)
      return Status::Ok();
    CUSTOS_ASSIGN_OR_RETURN(std::string out,
                            SubstituteSecretRefs(v.get<std::string>(), ctx, s, destination, found));
    v = std::move(out);
  } else if (v.is_array() || v.is_object()) {
    for (Json& e : v)
      CUSTOS_RETURN_IF_ERROR(Walk(e, ctx, s, destination, found));
  }
  return Status::Ok();
}

Status CheckAll(const Json& v, const SyscallContext& ctx, Services& s,
                const std::string& destination) {
  if (v.is_string()) {
    for (const SecretRef& ref : FindRefs(v.get_ref<const std::string&>())) {
      CUSTOS_ASSIGN_OR_RETURN(store::HandleRecord h,
                              s.LoadHandle(ref.id, ctx.call.agent, ctx.call.run));
      CUSTOS_RETURN_IF_ERROR(CheckDestination(ctx, h, destination));
    }
  } else if (v.is_array() || v.is_object()) {
    for (const Json& e : v)
      CUSTOS_RETURN_IF_ERROR(CheckAll(e, ctx, s, destination));
  }
  return Status::Ok();
}

}  // namespace

Status CheckSecretRefs(const Json& value, const SyscallContext& ctx, Services& s,
                       const std::string& destination) {
  return CheckAll(value, ctx, s, destination);
}

Result<std::string> SubstituteSecretRefs(std::string value, const SyscallContext& ctx, Services& s,
                                         const std::string& destination, bool* found) {
  const std::vector<SecretRef> refs = FindRefs(value);
  if (!refs.empty() && found != nullptr)
    *found = true;
  // Right to left, so the earlier positions stay valid.
  for (auto r = refs.rbegin(); r != refs.rend(); ++r) {
    CUSTOS_ASSIGN_OR_RETURN(store::HandleRecord h,
                            s.LoadHandle(r->id, ctx.call.agent, ctx.call.run));
    CUSTOS_RETURN_IF_ERROR(CheckDestination(ctx, h, destination));
    CUSTOS_ASSIGN_OR_RETURN(std::string secret, s.Unseal(h));
    value.replace(r->pos, kHandleIdLen + 4, secret);
  }
  return value;
}

Result<Json> SubstituteSecretRefsInJson(Json value, const SyscallContext& ctx, Services& s,
                                        const std::string& destination, bool* found) {
  CUSTOS_RETURN_IF_ERROR(Walk(value, ctx, s, destination, found));
  return value;
}

}  // namespace custos::kernel
