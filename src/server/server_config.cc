#include "custos/server/server_config.h"

#include <toml++/toml.h>

#include <cstdlib>

namespace custos::server {
namespace {

std::string Where(const std::filesystem::path& file, const toml::source_region& r) {
  return file.string() + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

Status WrongType(const std::filesystem::path& file, const toml::node& n, const std::string& key,
                 const char* want) {
  return Status(Reason::kPolicyWrongType, "server." + key + " must be " + want,
                Where(file, n.source()));
}

Status ReadInt(const std::filesystem::path& file, const toml::node& n, const std::string& key,
               int64_t min, int64_t* out) {
  const auto* i = n.as_integer();
  if (i == nullptr)
    return WrongType(file, n, key, "an integer");
  if (i->get() < min) {
    return Status(Reason::kPolicyWrongType,
                  "server." + key + " must be at least " + std::to_string(min),
                  Where(file, n.source()));
  }
  *out = i->get();
  return Status::Ok();
}

Status ReadServerTable(const std::filesystem::path& file, const toml::table& t, ServerConfig* c) {
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    int64_t n = 0;
    if (key == "listen" || key == "socket") {
      const auto* s = v.as_string();
      if (s == nullptr)
        return WrongType(file, v, key, "a string");
      (key == "listen" ? c->listen : c->socket) = s->get();
    } else if (key == "admins") {
      const auto* a = v.as_array();
      if (a == nullptr)
        return WrongType(file, v, key, "an array of strings");
      for (const toml::node& e : *a) {
        if (!e.is_string())
          return WrongType(file, e, key, "an array of strings");
        c->admins.insert(e.as_string()->get());
      }
    } else if (key == "peers") {
      const auto* p = v.as_table();
      if (p == nullptr)
        return WrongType(file, v, key, "a table of uid = \"agent\"");
      for (const auto& [uid_key, agent] : *p) {
        const std::string uid_text(uid_key.str());
        char* end = nullptr;
        const unsigned long uid = std::strtoul(uid_text.c_str(), &end, 10);
        if (uid_text.empty() || *end != '\0' || uid > 0xffffffffUL) {
          return Status(Reason::kPolicyWrongType,
                        "server.peers keys must be numeric uids, not '" + uid_text + "'",
                        Where(file, agent.source()));
        }
        if (!agent.is_string())
          return WrongType(file, agent, "peers." + uid_text, "a string (an agent name)");
        c->peers[static_cast<uint32_t>(uid)] = agent.as_string()->get();
      }
    } else if (key == "tls") {
      const auto* tls = v.as_table();
      if (tls == nullptr)
        return WrongType(file, v, key, "a table with cert and key");
      for (const auto& [tk, tv] : *tls) {
        const std::string name(tk.str());
        if (name != "cert" && name != "key") {
          return Status(Reason::kPolicyUnknownKey, "unknown config key 'server.tls." + name + "'",
                        Where(file, tv.source()));
        }
        const auto* path = tv.as_string();
        if (path == nullptr || path->get().empty())
          return WrongType(file, tv, "tls." + name, "a non-empty path");
        std::filesystem::path p = path->get();
        if (p.is_relative())
          p = file.parent_path() / p;
        (name == "cert" ? c->tls_cert : c->tls_key) = p;
      }
      if (c->tls_cert.empty() != c->tls_key.empty()) {
        return Status(Reason::kPolicyWrongType,
                      std::string("server.tls needs both cert and key (") +
                          (c->tls_cert.empty() ? "cert" : "key") + " is missing)",
                      Where(file, v.source()));
      }
    } else if (key == "threads" || key == "workers") {
      CUSTOS_RETURN_IF_ERROR(ReadInt(file, v, key, 1, &n));
      (key == "threads" ? c->threads : c->workers) = static_cast<int>(std::min<int64_t>(n, 256));
    } else if (key == "max_connections" || key == "max_body_bytes" || key == "max_header_bytes" ||
               key == "max_headers") {
      CUSTOS_RETURN_IF_ERROR(ReadInt(file, v, key, 1, &n));
      size_t* field = key == "max_connections"    ? &c->limits.max_connections
                      : key == "max_body_bytes"   ? &c->limits.max_body_bytes
                      : key == "max_header_bytes" ? &c->limits.max_header_bytes
                                                  : &c->limits.max_headers;
      *field = static_cast<size_t>(n);
    } else if (key == "header_timeout_ms" || key == "body_timeout_ms") {
      CUSTOS_RETURN_IF_ERROR(ReadInt(file, v, key, 1, &n));
      (key == "header_timeout_ms" ? c->limits.header_timeout_ms : c->limits.body_timeout_ms) = n;
    } else if (key == "max_streams") {
      CUSTOS_RETURN_IF_ERROR(ReadInt(file, v, key, 1, &n));
      c->limits.max_streams = static_cast<size_t>(n);
    } else if (key == "auth_failure_summary_ms") {
      CUSTOS_RETURN_IF_ERROR(ReadInt(file, v, key, 1, &n));
      c->limits.auth_failure_summary_ms = n;
    } else if (key == "stream_progress_ms" || key == "stream_timeout_ms") {
      CUSTOS_RETURN_IF_ERROR(ReadInt(file, v, key, 1, &n));
      (key == "stream_progress_ms" ? c->limits.stream_progress_ms : c->limits.stream_timeout_ms) =
          n;
    } else {
      return Status(Reason::kPolicyUnknownKey, "unknown config key 'server." + key + "'",
                    Where(file, v.source()));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<ServerConfig> LoadServerConfig(const std::filesystem::path& data_dir) {
  ServerConfig c;
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
  if (const toml::node* s = doc.get("server"); s != nullptr) {
    if (!s->is_table())
      return WrongType(file, *s, "", "a table");
    CUSTOS_RETURN_IF_ERROR(ReadServerTable(file, *s->as_table(), &c));
  }
  return c;
}

std::filesystem::path DefaultSocketPath(const std::filesystem::path& data_dir) {
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x != nullptr && *x != '\0')
    return std::filesystem::path(x) / "custos.sock";
  return data_dir / "custos.sock";
}

}  // namespace custos::server
