#include "cli/config.h"

#include <toml++/toml.h>

namespace custos::cli {
namespace {

std::string Where(const std::filesystem::path& file, const toml::source_region& r) {
  return file.string() + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

}  // namespace

Result<Config> LoadConfig(const std::filesystem::path& data_dir) {
  Config c;
  const std::filesystem::path file = data_dir / "config.toml";
  std::error_code ec;
  if (!std::filesystem::exists(file, ec))
    return c;
  toml::table doc;
  try {
    doc = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    return Status(Reason::kPolicyParseError, std::string(e.description()), Where(file, e.source()));
  }
  for (const auto& [key, node] : doc) {
    if (key.str() == "server")
      continue;  // custosd's settings: validated by server::LoadServerConfig
    if (key.str() != "log" || !node.is_table()) {
      return Status(Reason::kPolicyUnknownKey,
                    "unknown config key '" + std::string(key.str()) + "'",
                    Where(file, node.source()));
    }
    for (const auto& [k, v] : *node.as_table()) {
      if (k.str() == "checkpoint_every_entries" || k.str() == "checkpoint_every_ms") {
        const auto* n = v.as_integer();
        if (n == nullptr || n->get() < 0) {
          return Status(Reason::kPolicyWrongType,
                        "log." + std::string(k.str()) + " must be a non-negative integer",
                        Where(file, v.source()));
        }
        (k.str() == "checkpoint_every_entries" ? c.checkpoint_every_entries
                                               : c.checkpoint_every_ms) = n->get();
        continue;
      }
      if (k.str() != "durability") {
        return Status(Reason::kPolicyUnknownKey,
                      "unknown config key 'log." + std::string(k.str()) + "'",
                      Where(file, v.source()));
      }
      const auto* s = v.as_string();
      if (s == nullptr) {
        return Status(Reason::kPolicyWrongType, "log.durability must be a string",
                      Where(file, v.source()));
      }
      Result<audit::Durability> d = audit::ParseDurability(s->get());
      if (!d.ok())
        return Status(d.status().reason(), std::string(d.status().message()),
                      Where(file, v.source()));
      c.durability = *d;
    }
  }
  return c;
}

}  // namespace custos::cli
