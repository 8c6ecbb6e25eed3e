#include "custos/mcp/descriptor.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "custos/crypto/sha256.h"

namespace custos::mcp {
namespace {

constexpr std::array<std::string_view, 22> kMarkers = {"ignore previous",
                                                       "ignore all previous",
                                                       "ignore the above",
                                                       "disregard previous",
                                                       "disregard all",
                                                       "<important>",
                                                       "</important>",
                                                       "<system>",
                                                       "system prompt",
                                                       "do not tell the user",
                                                       "don't tell the user",
                                                       "do not mention",
                                                       "without telling",
                                                       "exfiltrate",
                                                       "id_rsa",
                                                       "/.ssh/",
                                                       "~/.ssh",
                                                       "before using this tool",
                                                       "new instructions:",
                                                       "you must now",
                                                       "send it to",
                                                       "upload it to"};

}  // namespace

std::string DescriptorHash(const Json& tool) {
  Json d = Json::object();
  for (const char* k :
       {"name", "title", "description", "inputSchema", "outputSchema", "annotations"}) {
    if (tool.is_object() && tool.contains(k))
      d[k] = tool.at(k);
  }
  // nlohmann objects are ordered maps: dump() sorts keys, which is all the canonical form needs
  // here (schemas may hold floats, which the log's canonical JSON refuses).
  return crypto::Sha256(d.dump(-1, ' ', true, Json::error_handler_t::replace)).Hex();
}

std::optional<std::string> FindInjectionMarker(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view m : kMarkers) {
    if (lower.find(m) != std::string::npos)
      return std::string(m);
  }
  return std::nullopt;
}

bool IsClassified(const Json& tool, const ServerConfig& server) {
  const std::string name = tool.is_object() ? tool.value("name", "") : "";
  auto listed = [&](const std::vector<std::string>& v) {
    return std::find(v.begin(), v.end(), name) != v.end();
  };
  if (listed(server.read_only) || listed(server.consequential))
    return true;
  if (!tool.is_object() || !tool.contains("annotations") || !tool.at("annotations").is_object())
    return false;
  const Json& a = tool.at("annotations");
  for (const char* k : {"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}) {
    if (a.contains(k) && a.at(k).is_boolean())
      return true;
  }
  return false;
}

}  // namespace custos::mcp
