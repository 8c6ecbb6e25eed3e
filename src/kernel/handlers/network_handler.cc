// network.send: a real HTTP(S) request through libcurl. The host is resolved once, here, and the
// policy decides on host:port *and* the resolved address; the effect connects to exactly that
// address (pinned), so DNS rebinding cannot move it. Redirects are followed only hop by hop, each
// hop decided by the policy again. Secret handles are substituted into headers at this boundary
// only, and only toward a destination the secret's policy allows.

#include <algorithm>

#include "custos/effects/http_client.h"
#include "custos/effects/resolve.h"
#include "custos/effects/url.h"
#include "kernel/environment.h"
#include "kernel/handlers/handlers.h"
#include "kernel/handlers/secret_refs.h"

namespace custos::kernel {

policy::Request MakePolicyRequest(const SyscallContext& ctx);

namespace {

std::string HostPort(const effects::Url& u) { return u.host + ":" + std::to_string(u.port); }

class NetworkSendHandler final : public EffectHandler {
 public:
  Status Resolve(SyscallContext& ctx, Services& s) const override {
    CUSTOS_ASSIGN_OR_RETURN(effects::Url url, effects::ParseUrl(ctx.call.target));
    const std::string method = ctx.call.args.value("method", "GET");
    static constexpr std::string_view kMethods[] = {"GET", "HEAD",  "POST",
                                                    "PUT", "PATCH", "DELETE"};
    if (std::find(std::begin(kMethods), std::end(kMethods), method) == std::end(kMethods)) {
      return Status(Reason::kSchemaViolation,
                    "method must be one of GET HEAD POST PUT PATCH DELETE", "/args/method");
    }
    ctx.target = url.ToString();
    ctx.host = url.host;
    ctx.port = url.port;
    CUSTOS_ASSIGN_OR_RETURN(std::vector<std::string> ips,
                            s.env().ResolveHost(ctx, url.host, url.port));
    if (ips.empty())
      return Status(Reason::kEffectFailed, "host " + url.host + " has no address");
    ctx.address = ips.front();  // resolved once; the effect connects to exactly this address
    // Secret references are checked before anything is decided allowed.
    if (ctx.call.args.contains("headers")) {
      for (auto it = ctx.call.args["headers"].begin(); it != ctx.call.args["headers"].end(); ++it) {
        if (!it->is_string()) {
          return Status(Reason::kSchemaViolation, "header values are strings",
                        "/args/headers/" + JsonPointerToken(it.key()));
        }
        CUSTOS_RETURN_IF_ERROR(CheckSecretRefs(*it, ctx, s, HostPort(url)));
      }
    }
    return Status::Ok();
  }

  void Egress(const SyscallContext& ctx, Services& s, std::string* out) const override {
    *out += ctx.call.target;
    if (ctx.call.args.contains("headers")) {
      for (auto it = ctx.call.args["headers"].begin(); it != ctx.call.args["headers"].end(); ++it) {
        *out += '\n';
        *out += it.key();
        *out += ": ";
        if (it->is_string())
          *out += it->get<std::string>();  // before substitution
      }
    }
    *out += '\n';
    if (ctx.call.args.contains("body")) {
      *out += ctx.call.args["body"].get<std::string>();
    } else {
      // Every input becomes the body, secret handles included: the scan must see their bytes
      // (a flow rule may not exist, or the host may count as internal).
      for (const store::HandleRecord& h : ctx.input_handles) {
        Result<std::string> c = s.Unseal(h);
        if (c.ok())
          *out += *c;
      }
    }
  }

  bool CarriesRawData(const SyscallContext& ctx) const override {
    return ctx.call.args.contains("body");
  }

  budget::Amounts MaxCost(const SyscallContext& ctx, Services& s) const override {
    budget::Amounts a;
    std::string egress;
    Egress(ctx, s, &egress);
    a[budget::Resource::kNetBytesOut] =
        static_cast<int64_t>(egress.size()) + 512;  // + request line/headers
    return a;
  }

  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    effects::HttpRequest req;
    CUSTOS_ASSIGN_OR_RETURN(req.url, effects::ParseUrl(ctx.target));
    req.method = ctx.call.args.value("method", "GET");
    req.pinned_ip = ctx.address;
    if (ctx.call.args.contains("headers")) {
      for (auto it = ctx.call.args["headers"].begin(); it != ctx.call.args["headers"].end(); ++it) {
        bool secret = false;
        CUSTOS_ASSIGN_OR_RETURN(std::string v, SubstituteSecretRefs(it->get<std::string>(), ctx, s,
                                                                    HostPort(req.url), &secret));
        req.headers.push_back({it.key(), std::move(v), secret});
      }
    }
    if (ctx.call.args.contains("body")) {
      req.body = ctx.call.args["body"].get<std::string>();
    } else {
      for (const store::HandleRecord& h : ctx.input_handles) {
        CUSTOS_ASSIGN_OR_RETURN(std::string c, s.Unseal(h));
        req.body += c;
      }
    }
    effects::HttpOptions opt;
    opt.max_body_bytes = std::min<size_t>(
        s.options().max_effect_bytes,
        static_cast<size_t>(std::max<int64_t>(
            0, ctx.call.args.value("max_bytes", int64_t(s.options().max_effect_bytes)))));
    // Each redirect hop is a new destination: resolve it once and ask the policy again.
    opt.on_redirect = [&ctx](const effects::Url& next) -> Result<std::string> {
      Result<std::vector<std::string>> ips = effects::ResolveHost(next.host, next.port);
      if (!ips.ok() || ips->empty()) {
        return Status(Reason::kRedirectDenied,
                      "redirect to " + next.ToString() + " does not resolve");
      }
      SyscallContext hop(ctx.call);
      hop.policy = ctx.policy;
      hop.principal = ctx.principal;
      hop.input_labels = ctx.input_labels;
      hop.target = next.ToString();
      hop.host = next.host;
      hop.port = next.port;
      hop.address = ips->front();
      Decision d = ctx.policy->Decide(MakePolicyRequest(hop));
      if (d.allowed()) {
        policy::FlowResult f = ctx.policy->FlowDecide(MakePolicyRequest(hop));
        if (f.verdict != Verdict::kAllow) {
          return Status(Reason::kRedirectDenied,
                        "redirect to " + hop.target + " refused: " + f.explanation);
        }
        return ips->front();
      }
      return Status(Reason::kRedirectDenied,
                    "redirect to " + hop.target + " refused: " + d.explanation);
    };
    CUSTOS_ASSIGN_OR_RETURN(effects::HttpResponse resp, effects::HttpSend(req, opt));

    EffectOutput out;
    out.kind = "http";
    // What comes back from the network is untrusted, says where it came from, and is external
    // unless the policy calls the host internal.
    out.labels = labels::LabelSet::Untrusted();
    out.labels.AddTag("source:" + resp.effective_url.host);
    if (!ctx.policy->IsInternalHost(resp.effective_url.host))
      out.labels.AddTag("external");
    out.usage[budget::Resource::kNetBytesOut] = static_cast<int64_t>(resp.bytes_sent);
    out.meta = {{"url", resp.effective_url.ToString()}, {"status", resp.status}};
    out.frame = TextFrame(resp.body, s.options().max_frame_bytes);
    out.frame["status"] = resp.status;
    out.frame["url"] = resp.effective_url.ToString();
    out.frame["address"] = resp.primary_ip;
    if (const std::string* ct = resp.Header("content-type"))
      out.frame["content_type"] = *ct;
    out.content = std::move(resp.body);
    return out;
  }
};

}  // namespace

std::unique_ptr<EffectHandler> MakeNetworkSendHandler() {
  return std::make_unique<NetworkSendHandler>();
}

}  // namespace custos::kernel
