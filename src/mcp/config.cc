#include "custos/mcp/config.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace custos::mcp {
namespace {

std::string At(std::string_view origin, const toml::source_region& r) {
  return std::string(origin) + ":" + std::to_string(r.begin.line) + ":" +
         std::to_string(r.begin.column);
}

Status Err(std::string_view origin, const toml::node& n, std::string msg) {
  return Status(Reason::kMcpConfigError, std::move(msg), At(origin, n.source()));
}

Result<std::string> Str(std::string_view origin, const toml::node& n, const std::string& key) {
  if (!n.is_string())
    return Err(origin, n, key + ": must be a string");
  return std::string(*n.value<std::string>());
}

Result<int64_t> PosInt(std::string_view origin, const toml::node& n, const std::string& key) {
  if (!n.is_integer() || *n.value<int64_t>() <= 0)
    return Err(origin, n, key + ": must be an integer > 0");
  return *n.value<int64_t>();
}

Result<std::vector<std::string>> StrList(std::string_view origin, const toml::node& n,
                                         const std::string& key) {
  const toml::array* a = n.as_array();
  if (a == nullptr)
    return Err(origin, n, key + ": must be an array of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < a->size(); ++i) {
    const toml::node& e = *a->get(i);
    if (!e.is_string())
      return Err(origin, e, key + "[" + std::to_string(i) + "]: must be a string");
    out.push_back(*e.value<std::string>());
  }
  return out;
}

Result<std::string> FindInPath(const std::string& cmd) {
  if (cmd.find('/') != std::string::npos) {
    std::filesystem::path p = std::filesystem::absolute(cmd);
    if (::access(p.c_str(), X_OK) != 0)
      return Status(Reason::kMcpConfigError, "command '" + cmd + "' is not executable");
    return p.string();
  }
  const char* path = std::getenv("PATH");
  std::stringstream ss(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty())
      continue;
    std::filesystem::path p = std::filesystem::path(dir) / cmd;
    if (::access(p.c_str(), X_OK) == 0)
      return p.string();
  }
  return Status(Reason::kMcpConfigError, "command '" + cmd + "' is not in PATH");
}

bool ValidEnvName(std::string_view n) {
  if (n.empty() || n.size() > 128 || (n[0] >= '0' && n[0] <= '9'))
    return false;
  for (char c : n) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  }
  return true;
}

// http:// only to a loopback host (a plain-text hop off the machine would expose the session and
// the calls); https:// to any host, certificate verified by libcurl (decision 024).
Status CheckServerUrl(const std::string& url) {
  if (url.size() > 2048)
    return Status(Reason::kMcpConfigError, "URL too long");
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '\x7f')
      return Status(Reason::kMcpConfigError, "URL contains spaces or control characters");
  }
  if (url.starts_with("https://") && url.size() > 8)
    return Status::Ok();
  if (!url.starts_with("http://"))
    return Status(Reason::kMcpConfigError, "must be an http:// or https:// URL");
  std::string rest = url.substr(7);
  std::string host = rest.substr(0, rest.find_first_of("/?#"));
  if (host.find('@') != std::string::npos)
    return Status(Reason::kMcpConfigError, "credentials in the URL are not allowed");
  if (host.starts_with("[")) {
    host = host.substr(0, host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  if (host == "127.0.0.1" || host == "localhost" || host == "[::1]" ||
      (host.starts_with("127.") && host.find_first_not_of("0123456789.") == std::string::npos))
    return Status::Ok();
  return Status(Reason::kMcpConfigError,
                "plain http:// is allowed only to a loopback host; use https:// for '" +
                    host.substr(0, 64) + "'");
}

// An agent or secret name as gateway.toml may name it: 1-64 characters of [A-Za-z0-9_-].
bool PolicyName(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

Status ParseAuth(std::string_view origin, const toml::node& n,
                 const std::filesystem::path& base_dir, HttpAuthConfig* a) {
  const toml::table* t = n.as_table();
  if (t == nullptr)
    return Err(origin, n, "http.auth: must be a table");
  a->enabled = true;
  bool has_jwks = false;
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    const std::string path = "http.auth." + key;
    if (key == "resource") {
      CUSTOS_ASSIGN_OR_RETURN(a->resource, Str(origin, v, path));
      if (!(a->resource.starts_with("http://") || a->resource.starts_with("https://")))
        return Err(origin, v, path + ": must be an http(s) URI");
    } else if (key == "issuer") {
      CUSTOS_ASSIGN_OR_RETURN(a->issuer, Str(origin, v, path));
    } else if (key == "leeway_s") {
      CUSTOS_ASSIGN_OR_RETURN(a->leeway_s, PosInt(origin, v, path));
      if (a->leeway_s > 600)
        return Err(origin, v, path + ": must be at most 600");
    } else if (key == "jwks_file") {
      CUSTOS_ASSIGN_OR_RETURN(std::string f, Str(origin, v, path));
      const std::filesystem::path file =
          std::filesystem::path(f).is_absolute() ? std::filesystem::path(f) : base_dir / f;
      std::ifstream in(file, std::ios::binary);
      if (!in)
        return Err(origin, v, path + ": cannot read " + file.string());
      std::stringstream ss;
      ss << in.rdbuf();
      Result<Json> j = ParseUntrustedJson(ss.str());
      if (!j.ok())
        return Err(origin, v, path + ": not JSON: " + std::string(j.status().message()));
      a->jwks = *j;
      has_jwks = true;
    } else if (key == "jwks_url") {
      CUSTOS_ASSIGN_OR_RETURN(a->jwks_url, Str(origin, v, path));
      if (Status st = CheckServerUrl(a->jwks_url); !st.ok())
        return Err(origin, v, path + ": " + std::string(st.message()));
    } else if (key == "jwks_refresh_s") {
      CUSTOS_ASSIGN_OR_RETURN(a->jwks_refresh_s, PosInt(origin, v, path));
      if (a->jwks_refresh_s < 60 || a->jwks_refresh_s > 86'400)
        return Err(origin, v, path + ": must be between 60 and 86400");
    } else if (key == "subjects") {
      const toml::table* st = v.as_table();
      if (st == nullptr)
        return Err(origin, v, path + ": must be a table of \"subject\" = \"agent\"");
      for (const auto& [sk, sv] : *st) {
        const std::string subject(sk.str());
        const std::string spath = path + ".\"" + subject + "\"";
        CUSTOS_ASSIGN_OR_RETURN(std::string agent, Str(origin, sv, spath));
        if (!PolicyName(agent))
          return Err(origin, sv, spath + ": agent names are 1-64 characters of [A-Za-z0-9_-]");
        if (subject.empty())
          return Err(origin, sv, path + ": a subject must not be empty");
        a->subjects[subject] = agent;
      }
    } else {
      return Err(origin, v, path + ": unknown key");
    }
  }
  if (has_jwks && !a->jwks_url.empty())
    return Err(origin, n, "http.auth: jwks_file and jwks_url are alternatives; give one");
  if (a->resource.empty() || a->issuer.empty() || (!has_jwks && a->jwks_url.empty()))
    return Err(origin, n, "http.auth: needs resource, issuer and jwks_file or jwks_url");
  return Status::Ok();
}

Result<ServerConfig> ParseServer(std::string_view origin, const toml::table& t, size_t index,
                                 const std::filesystem::path& base_dir) {
  const std::string where = "servers[" + std::to_string(index) + "]";
  ServerConfig s;
  std::string command;
  std::vector<std::string> args;
  bool has_name = false;
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    const std::string path = where + "." + key;
    if (key == "name") {
      CUSTOS_ASSIGN_OR_RETURN(s.name, Str(origin, v, path));
      if (!ValidServerName(s.name))
        return Err(origin, v, path + ": must match [a-z][a-z0-9-]{0,31}");
      has_name = true;
    } else if (key == "command") {
      CUSTOS_ASSIGN_OR_RETURN(command, Str(origin, v, path));
      if (command.empty())
        return Err(origin, v, path + ": must not be empty");
      Result<std::string> found = FindInPath(command);
      if (!found.ok())
        return Err(origin, v, path + ": " + std::string(found.status().message()));
      command = *found;
    } else if (key == "args") {
      CUSTOS_ASSIGN_OR_RETURN(args, StrList(origin, v, path));
    } else if (key == "env") {
      CUSTOS_ASSIGN_OR_RETURN(s.env, StrList(origin, v, path));
      for (const std::string& n : s.env) {
        if (!ValidEnvName(n))
          return Err(origin, v, path + ": '" + n + "' is not a variable name");
      }
    } else if (key == "set_env") {
      const toml::table* e = v.as_table();
      if (e == nullptr)
        return Err(origin, v, path + ": must be a table of strings");
      for (const auto& [ek, ev] : *e) {
        const std::string name(ek.str());
        if (!ValidEnvName(name))
          return Err(origin, ev, path + "." + name + ": not a variable name");
        CUSTOS_ASSIGN_OR_RETURN(s.set_env[name], Str(origin, ev, path + "." + name));
      }
    } else if (key == "cwd") {
      CUSTOS_ASSIGN_OR_RETURN(s.cwd, Str(origin, v, path));
      if (s.cwd.empty() || s.cwd[0] != '/')
        return Err(origin, v, path + ": must be an absolute path");
    } else if (key == "url") {
      CUSTOS_ASSIGN_OR_RETURN(s.url, Str(origin, v, path));
      if (Status st = CheckServerUrl(s.url); !st.ok())
        return Err(origin, v, path + ": " + std::string(st.message()));
    } else if (key == "trust") {
      CUSTOS_ASSIGN_OR_RETURN(std::string tr, Str(origin, v, path));
      if (tr == "untrusted") {
        s.trust = ServerTrust::kUntrusted;
      } else if (tr == "trusted") {
        s.trust = ServerTrust::kTrusted;
      } else {
        return Err(origin, v, path + ": must be \"untrusted\" or \"trusted\"");
      }
    } else if (key == "timeout_ms") {
      CUSTOS_ASSIGN_OR_RETURN(s.timeout_ms, PosInt(origin, v, path));
    } else if (key == "startup_timeout_ms") {
      CUSTOS_ASSIGN_OR_RETURN(s.startup_timeout_ms, PosInt(origin, v, path));
    } else if (key == "max_message_bytes") {
      CUSTOS_ASSIGN_OR_RETURN(int64_t m, PosInt(origin, v, path));
      if (m < 1024 || m > (int64_t{64} << 20))
        return Err(origin, v, path + ": must be between 1024 and 67108864");
      s.max_message_bytes = static_cast<size_t>(m);
    } else if (key == "max_notifications_per_sec") {
      CUSTOS_ASSIGN_OR_RETURN(s.max_notifications_per_sec, PosInt(origin, v, path));
    } else if (key == "read_only") {
      CUSTOS_ASSIGN_OR_RETURN(s.read_only, StrList(origin, v, path));
    } else if (key == "consequential") {
      CUSTOS_ASSIGN_OR_RETURN(s.consequential, StrList(origin, v, path));
    } else if (key == "client_capabilities") {
      CUSTOS_ASSIGN_OR_RETURN(s.client_capabilities, StrList(origin, v, path));
      for (const std::string& c : s.client_capabilities) {
        if (c != "sampling" && c != "elicitation" && c != "roots") {
          return Err(origin, v,
                     path + ": '" + c + "' is not one of \"sampling\", \"elicitation\", \"roots\"");
        }
      }
    } else {
      return Err(origin, v, path + ": unknown key");
    }
  }
  if (!has_name)
    return Status(Reason::kMcpConfigError, where + ": missing required key 'name'",
                  At(origin, t.source()));
  if (!s.url.empty()) {
    if (!command.empty() || !args.empty() || !s.env.empty() || !s.set_env.empty()) {
      return Status(Reason::kMcpConfigError,
                    where + ": a server has either 'url' or 'command' (with args/env/set_env)",
                    At(origin, t.source()));
    }
    return s;
  }
  if (command.empty()) {
    return Status(Reason::kMcpConfigError, where + ": missing required key 'command' (or 'url')",
                  At(origin, t.source()));
  }
  (void)base_dir;
  s.argv.push_back(command);
  s.argv.insert(s.argv.end(), args.begin(), args.end());
  return s;
}

}  // namespace

bool ValidServerName(std::string_view name) {
  if (name.empty() || name.size() > 32 || name[0] < 'a' || name[0] > 'z')
    return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return false;
  }
  return true;
}

Result<GatewayConfig> ParseGatewayConfig(std::string_view text, std::string_view origin,
                                         const std::filesystem::path& base_dir) {
  toml::table doc;
  try {
    doc = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    return Status(Reason::kMcpConfigError, std::string(e.description()),
                  std::string(origin) + ":" + std::to_string(e.source().begin.line) + ":" +
                      std::to_string(e.source().begin.column));
  }
  GatewayConfig c;
  bool has_policy = false;
  std::string namespaces_at;  // where `namespaces` was set, for the error below
  std::string secrets_at;     // likewise `secrets`
  for (const auto& [k, v] : doc) {
    const std::string key(k.str());
    if (key == "gateway") {
      const toml::table* g = v.as_table();
      if (g == nullptr)
        return Err(origin, v, "gateway: must be a table");
      for (const auto& [gk, gv] : *g) {
        const std::string gkey(gk.str());
        const std::string path = "gateway." + gkey;
        if (gkey == "policy") {
          CUSTOS_ASSIGN_OR_RETURN(std::string p, Str(origin, gv, path));
          c.policy_file =
              std::filesystem::path(p).is_absolute() ? std::filesystem::path(p) : base_dir / p;
          has_policy = true;
        } else if (gkey == "data_dir") {
          CUSTOS_ASSIGN_OR_RETURN(std::string p, Str(origin, gv, path));
          c.data_dir =
              std::filesystem::path(p).is_absolute() ? std::filesystem::path(p) : base_dir / p;
        } else if (gkey == "agent") {
          CUSTOS_ASSIGN_OR_RETURN(c.agent, Str(origin, gv, path));
          if (c.agent.empty())
            return Err(origin, gv, path + ": must not be empty");
        } else if (gkey == "pin") {
          CUSTOS_ASSIGN_OR_RETURN(std::string p, Str(origin, gv, path));
          if (p == "first-use") {
            c.pin = PinMode::kFirstUse;
          } else if (p == "approve") {
            c.pin = PinMode::kApprove;
          } else {
            return Err(origin, gv, path + ": must be \"first-use\" or \"approve\"");
          }
        } else if (gkey == "namespaces") {
          const auto* b = gv.as_boolean();
          if (b == nullptr)
            return Err(origin, gv, path + ": must be true or false");
          c.namespaces = b->get();
          namespaces_at = At(origin, gv.source());
        } else if (gkey == "secrets") {
          CUSTOS_ASSIGN_OR_RETURN(c.secrets, StrList(origin, gv, path));
          for (const std::string& name : c.secrets) {
            if (!PolicyName(name))
              return Err(origin, gv, path + ": secret names are 1-64 characters of [A-Za-z0-9_-]");
          }
          secrets_at = At(origin, gv.source());
        } else {
          return Err(origin, gv, path + ": unknown key");
        }
      }
    } else if (key == "http") {
      const toml::table* h = v.as_table();
      if (h == nullptr)
        return Err(origin, v, "http: must be a table");
      for (const auto& [hk, hv] : *h) {
        const std::string hkey(hk.str());
        const std::string path = "http." + hkey;
        if (hkey == "allowed_origins") {
          CUSTOS_ASSIGN_OR_RETURN(c.http.allowed_origins, StrList(origin, hv, path));
          for (const std::string& o : c.http.allowed_origins) {
            if (!(o.starts_with("http://") || o.starts_with("https://")) || o.back() == '/')
              return Err(origin, hv,
                         path + ": '" + o + "' is not an origin (scheme://host[:port])");
          }
        } else if (hkey == "max_sessions") {
          CUSTOS_ASSIGN_OR_RETURN(int64_t n, PosInt(origin, hv, path));
          if (n > 1024)
            return Err(origin, hv, path + ": must be at most 1024");
          c.http.max_sessions = static_cast<size_t>(n);
        } else if (hkey == "session_idle_ms") {
          CUSTOS_ASSIGN_OR_RETURN(c.http.session_idle_ms, PosInt(origin, hv, path));
        } else if (hkey == "auth") {
          CUSTOS_RETURN_IF_ERROR(ParseAuth(origin, hv, base_dir, &c.http.auth));
        } else {
          return Err(origin, hv, path + ": unknown key");
        }
      }
    } else if (key == "servers") {
      const toml::array* a = v.as_array();
      if (a == nullptr)
        return Err(origin, v, "servers: must be an array of tables ([[servers]])");
      std::set<std::string> names;
      for (size_t i = 0; i < a->size(); ++i) {
        const toml::table* t = a->get(i)->as_table();
        if (t == nullptr)
          return Err(origin, *a->get(i), "servers[" + std::to_string(i) + "]: must be a table");
        CUSTOS_ASSIGN_OR_RETURN(ServerConfig s, ParseServer(origin, *t, i, base_dir));
        if (!names.insert(s.name).second) {
          return Status(
              Reason::kMcpConfigError,
              "servers[" + std::to_string(i) + "].name: duplicate server '" + s.name + "'",
              At(origin, t->source()));
        }
        c.servers.push_back(std::move(s));
      }
    } else {
      return Err(origin, v, key + ": unknown key");
    }
  }
  if (!has_policy) {
    return Status(Reason::kMcpConfigError, "gateway.policy: missing required key",
                  std::string(origin) + ":1:1");
  }
  // Without namespaces two servers could offer the same name, and a server could shadow another's
  // tool: only a gateway in front of exactly one server may show the server's own names.
  if (!c.namespaces && c.servers.size() != 1) {
    return Status(Reason::kMcpConfigError,
                  "gateway.namespaces: false needs exactly one [[servers]] entry (there are " +
                      std::to_string(c.servers.size()) + ")",
                  namespaces_at);
  }
  // The secrets tool is "custos.open_secret": no server may own the "custos." namespace then.
  if (!c.secrets.empty()) {
    for (const ServerConfig& sc : c.servers) {
      if (sc.name == "custos") {
        return Status(Reason::kMcpConfigError,
                      "gateway.secrets: a server named \"custos\" would share the namespace of "
                      "the gateway's custos.open_secret tool; rename it",
                      secrets_at);
      }
    }
  }
  return c;
}

Result<GatewayConfig> LoadGatewayConfig(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    return Status(Reason::kNotFound, "cannot read gateway config", file.string());
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > (1 << 20))
    return Status(Reason::kMcpConfigError, "gateway config over 1 MiB", file.string());
  return ParseGatewayConfig(ss.str(), file.string(), std::filesystem::absolute(file).parent_path());
}

}  // namespace custos::mcp
