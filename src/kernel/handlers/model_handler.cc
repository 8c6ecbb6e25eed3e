// model.call: a chat completion against the OpenAI-compatible endpoint the policy configures for
// the model. Tokens are reserved at their maximum before the call (input estimated from bytes,
// output = max_tokens), settled at what the endpoint reports, and the rest refunded. The output
// carries the join of every input's labels (INV-5), so a model that read untrusted text produces
// untrusted text.

#include <limits>

#include "custos/effects/http_client.h"
#include "custos/effects/resolve.h"
#include "custos/effects/url.h"
#include "kernel/handlers/handlers.h"

namespace custos::kernel {
namespace {

constexpr int64_t kDefaultMaxTokens = 1024;
constexpr int64_t kMaxMaxTokens = 1 << 20;

// The messages sent: the caller's, then each input handle as a context message.
Result<Json> BuildMessages(const SyscallContext& ctx, Services& s) {
  Json messages = Json::array();
  const Json& a = ctx.call.args;
  if (a.contains("messages")) {
    const Json& m = a["messages"];
    for (size_t i = 0; i < m.size(); ++i) {
      const std::string at = "/args/messages/" + std::to_string(i);
      if (!m[i].is_object() || !m[i].contains("role") || !m[i].contains("content") ||
          !m[i]["role"].is_string() || !m[i]["content"].is_string()) {
        return Status(Reason::kSchemaViolation,
                      "a message is {\"role\": string, \"content\": string}", at);
      }
      messages.push_back({{"role", m[i]["role"]}, {"content", m[i]["content"]}});
    }
  }
  if (a.contains("prompt"))
    messages.push_back({{"role", "user"}, {"content", a["prompt"]}});
  for (const store::HandleRecord& h : ctx.input_handles) {
    CUSTOS_ASSIGN_OR_RETURN(std::string c, s.Unseal(h));
    messages.push_back(
        {{"role", "user"}, {"content", "Context (" + h.kind + " " + h.id + "):\n" + c}});
  }
  if (messages.empty()) {
    return Status(Reason::kSchemaViolation, "model.call needs 'messages', 'prompt' or an input",
                  "/args");
  }
  return messages;
}

int64_t MaxTokens(const SyscallContext& ctx) {
  return std::clamp<int64_t>(ctx.call.args.value("max_tokens", kDefaultMaxTokens), 1,
                             kMaxMaxTokens);
}

// Saturates instead of overflowing: an endpoint may report any number of tokens.
int64_t Price(int64_t tokens, int64_t micros_per_1k) {
  if (tokens <= 0 || micros_per_1k <= 0)
    return 0;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (tokens > (kMax - 999) / micros_per_1k)
    return kMax;
  return (tokens * micros_per_1k + 999) / 1000;
}

// A usage count the endpoint reported, or -1 when it is missing or not a non-negative integer
// (the endpoint is untrusted: a wrong type must not throw out of the kernel).
int64_t ReportedCount(const Json& response, const char* key) {
  auto usage = response.find("usage");
  if (usage == response.end() || !usage->is_object())
    return -1;
  auto it = usage->find(key);
  if (it == usage->end() || !it->is_number_integer())
    return -1;
  if (it->is_number_unsigned() &&
      it->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
    return std::numeric_limits<int64_t>::max();
  }
  return it->get<int64_t>();
}

class ModelCallHandler final : public EffectHandler {
 public:
  Status Resolve(SyscallContext& ctx, Services&) const override {
    ctx.target = ctx.call.target;
    const policy::ModelEndpoint* ep = ctx.policy->FindModel(ctx.target);
    if (ep != nullptr) {
      CUSTOS_ASSIGN_OR_RETURN(effects::Url url, effects::ParseUrl(ep->url));
      ctx.host = url.host;
      ctx.port = url.port;
    }
    return Status::Ok();
  }

  bool CarriesRawData(const SyscallContext& ctx) const override {
    return ctx.call.args.contains("messages") || ctx.call.args.contains("prompt");
  }

  void Egress(const SyscallContext& ctx, Services& s, std::string* out) const override {
    Result<Json> m = BuildMessages(ctx, s);
    if (m.ok())
      *out += m->dump();
  }

  budget::Amounts MaxCost(const SyscallContext& ctx, Services& s) const override {
    budget::Amounts a;
    std::string text;
    Egress(ctx, s, &text);
    // A token is never shorter than one byte; reserving bytes/2 + 16 covers real tokenizers
    // (about 4 bytes a token) with room, and settle refunds the difference.
    a[budget::Resource::kModelTokensIn] = static_cast<int64_t>(text.size()) / 2 + 16;
    a[budget::Resource::kModelTokensOut] = MaxTokens(ctx);
    if (const policy::ModelEndpoint* ep = ctx.policy->FindModel(ctx.target)) {
      a[budget::Resource::kSpendMicros] =
          Price(a[budget::Resource::kModelTokensIn], ep->micros_per_1k_tokens_in) +
          Price(a[budget::Resource::kModelTokensOut], ep->micros_per_1k_tokens_out);
    }
    return a;
  }

  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    const policy::ModelEndpoint* ep = ctx.policy->FindModel(ctx.target);
    if (ep == nullptr) {
      return Status(Reason::kModelNotAllowed,
                    "no endpoint is configured for model '" + ctx.target + "'");
    }
    CUSTOS_ASSIGN_OR_RETURN(Json messages, BuildMessages(ctx, s));
    CUSTOS_ASSIGN_OR_RETURN(effects::Url base, effects::ParseUrl(ep->url));
    std::string path = base.path_and_query;
    if (path.empty() || path.back() != '/')
      path += '/';
    effects::HttpRequest req;
    CUSTOS_ASSIGN_OR_RETURN(
        req.url, effects::ParseUrl(base.scheme + "://" + base.HostForUrl() + ":" +
                                   std::to_string(base.port) + path + "chat/completions"));
    CUSTOS_ASSIGN_OR_RETURN(std::vector<std::string> ips,
                            effects::ResolveHost(base.host, base.port));
    if (ips.empty())
      return Status(Reason::kEffectFailed, "model endpoint has no address");
    req.pinned_ip = ips.front();
    req.method = "POST";
    req.headers.push_back({"Content-Type", "application/json", false});
    Json body = {{"model", ctx.target}, {"messages", messages}, {"max_tokens", MaxTokens(ctx)}};
    req.body = body.dump();
    effects::HttpOptions opt;
    opt.max_redirects = 0;
    opt.max_body_bytes = s.options().max_effect_bytes;
    CUSTOS_ASSIGN_OR_RETURN(effects::HttpResponse resp, effects::HttpSend(req, opt));
    if (resp.status / 100 != 2) {
      return Status(Reason::kEffectFailed,
                    "model endpoint answered HTTP " + std::to_string(resp.status));
    }
    Result<Json> j = ParseUntrustedJson(resp.body);
    if (!j.ok() || !j->is_object())
      return Status(Reason::kEffectFailed, "model endpoint sent malformed JSON");
    std::string content;
    try {
      content = (*j).at("choices").at(0).at("message").at("content").get<std::string>();
    } catch (const nlohmann::json::exception&) {
      return Status(Reason::kEffectFailed, "model response has no choices[0].message.content");
    }
    EffectOutput out;
    out.kind = "model";
    out.labels.AddTag("source:model:" + ctx.target);
    int64_t in = ReportedCount(*j, "prompt_tokens");
    int64_t outt = ReportedCount(*j, "completion_tokens");
    // An endpoint that reports no usage is charged the reservation: never under-count.
    if (in < 0)
      in = ctx.reserve[budget::Resource::kModelTokensIn];
    if (outt < 0)
      outt = ctx.reserve[budget::Resource::kModelTokensOut];
    out.usage[budget::Resource::kModelTokensIn] = in;
    out.usage[budget::Resource::kModelTokensOut] = outt;
    out.usage[budget::Resource::kSpendMicros] =
        Price(in, ep->micros_per_1k_tokens_in) + Price(outt, ep->micros_per_1k_tokens_out);
    out.usage[budget::Resource::kNetBytesOut] = 0;
    out.frame = TextFrame(content, s.options().max_frame_bytes);
    out.frame["model"] = ctx.target;
    out.frame["usage"] = {{"prompt_tokens", in}, {"completion_tokens", outt}};
    out.content = std::move(content);
    return out;
  }
};

}  // namespace

std::unique_ptr<EffectHandler> MakeModelCallHandler() {
  return std::make_unique<ModelCallHandler>();
}

}  // namespace custos::kernel
