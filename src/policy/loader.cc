// Parsing, validation and compilation of policy documents. TOML is converted to the same JSON
// tree a JSON policy parses to, with a side table of source positions, so one validator serves
// both formats and the policy hash is format-independent.

#include <toml++/toml.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "custos/core/json.h"
#include "custos/crypto/sha256.h"
#include "policy/policy_internal.h"

namespace custos::policy::internal {
namespace {

constexpr size_t kMaxPolicyBytes = 16 << 20;
constexpr size_t kMaxIdBytes = 64;
constexpr size_t kMaxNameBytes = 64;

// ---------------------------------------------------------------------------------------------
// Source positions

struct Pos {
  uint32_t line = 0;
  uint32_t col = 0;
};

class SourceMap {
 public:
  SourceMap(std::string_view origin, bool json) : origin_(origin), json_(json) {}

  bool json() const { return json_; }
  const std::string& origin() const { return origin_; }

  void SetValue(const std::string& ptr, const toml::source_region& r) {
    values_[ptr] = {r.begin.line, r.begin.column};
  }
  void SetKey(const std::string& ptr, const toml::source_region& r) {
    keys_[ptr] = {r.begin.line, r.begin.column};
  }

  // "file:line:col" for TOML (the key's position when `key`, else the value's; falling back to
  // the nearest enclosing node that has one); "file:/json/pointer" for JSON.
  std::string At(std::string_view ptr, bool key) const {
    if (json_) {
      return origin_ + ":" + std::string(ptr);
    }
    std::string p(ptr);
    while (true) {
      if (key) {
        if (auto it = keys_.find(p); it != keys_.end() && it->second.line > 0) {
          return Format(it->second);
        }
      }
      if (auto it = values_.find(p); it != values_.end() && it->second.line > 0) {
        return Format(it->second);
      }
      if (auto it = keys_.find(p); it != keys_.end() && it->second.line > 0) {
        return Format(it->second);
      }
      if (p.empty()) {
        return origin_ + ":1:1";
      }
      p.resize(p.rfind('/'));
      key = false;
    }
  }

 private:
  std::string Format(Pos pos) const {
    return origin_ + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.col);
  }

  std::string origin_;
  bool json_;
  std::unordered_map<std::string, Pos> values_;
  std::unordered_map<std::string, Pos> keys_;
};

// ---------------------------------------------------------------------------------------------
// TOML -> JSON

std::string ChildPath(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
}
std::string IndexPath(std::string_view path, size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

Status ConvertToml(const toml::node& n, const std::string& ptr, const std::string& path,
                   SourceMap* map, Json* out) {
  map->SetValue(ptr, n.source());
  if (const toml::table* t = n.as_table()) {
    *out = Json::object();
    for (auto&& [k, v] : *t) {
      const std::string key(k.str());
      const std::string child = ptr + "/" + JsonPointerToken(key);
      map->SetKey(child, k.source());
      Json cv;
      CUSTOS_RETURN_IF_ERROR(ConvertToml(v, child, ChildPath(path, key), map, &cv));
      (*out)[key] = std::move(cv);
    }
    return Status::Ok();
  }
  if (const toml::array* a = n.as_array()) {
    *out = Json::array();
    for (size_t i = 0; i < a->size(); ++i) {
      Json cv;
      CUSTOS_RETURN_IF_ERROR(
          ConvertToml(*a->get(i), ptr + "/" + std::to_string(i), IndexPath(path, i), map, &cv));
      out->push_back(std::move(cv));
    }
    return Status::Ok();
  }
  if (const auto* s = n.as_string()) {
    *out = s->get();
  } else if (const auto* i = n.as_integer()) {
    *out = static_cast<int64_t>(i->get());
  } else if (const auto* f = n.as_floating_point()) {
    *out = f->get();
  } else if (const auto* b = n.as_boolean()) {
    *out = b->get();
  } else {
    return Status(Reason::kPolicyWrongType,
                  path + ": dates and times are not used in a policy; write a string or integer",
                  map->At(ptr, false));
  }
  return Status::Ok();
}

Result<Json> ParseToml(std::string_view text, SourceMap* map) {
  toml::table table;
  try {
    table = toml::parse(text, map->origin());
  } catch (const toml::parse_error& e) {
    const toml::source_position& p = e.source().begin;
    return Status(Reason::kPolicyParseError, std::string(e.description()),
                  map->origin() + ":" + std::to_string(p.line) + ":" + std::to_string(p.column));
  } catch (const std::exception& e) {
    return Status(Reason::kPolicyParseError, std::string("TOML parser failed: ") + e.what(),
                  map->origin());
  }
  Json doc;
  CUSTOS_RETURN_IF_ERROR(ConvertToml(table, "", "", map, &doc));
  return doc;
}

// nlohmann keeps the last of two equal keys; a policy must not have any, since the one a reader
// sees first would not be the one that applies. A second pass with a parser callback finds them.
Status CheckDuplicateJsonKeys(std::string_view text, const SourceMap& map) {
  struct Frame {
    bool array = false;
    size_t next = 0;
    std::string token;
    std::unordered_set<std::string> keys;
  };
  std::vector<Frame> stack;
  std::string dup_ptr;
  auto element_begins = [&] {
    if (!stack.empty() && stack.back().array) {
      stack.back().token = std::to_string(stack.back().next++);
    }
  };
  auto pointer = [&] {
    std::string p;
    for (const Frame& f : stack) {
      p += "/" + JsonPointerToken(f.token);
    }
    return p;
  };
  try {
    const Json reparsed = Json::parse(
        text.begin(), text.end(),
        [&](int, Json::parse_event_t ev, Json& parsed) {
          switch (ev) {
            case Json::parse_event_t::object_start:
            case Json::parse_event_t::array_start:
              element_begins();
              stack.push_back({ev == Json::parse_event_t::array_start, 0, "", {}});
              break;
            case Json::parse_event_t::object_end:
            case Json::parse_event_t::array_end:
              if (!stack.empty()) {
                stack.pop_back();
              }
              break;
            case Json::parse_event_t::key: {
              const std::string key = parsed.get<std::string>();
              stack.back().token = key;
              if (!stack.back().keys.insert(key).second && dup_ptr.empty()) {
                dup_ptr = pointer();
              }
              break;
            }
            case Json::parse_event_t::value:
              element_begins();
              break;
          }
          return true;
        },
        /*allow_exceptions=*/true, /*ignore_comments=*/false);
    (void)reparsed;
  } catch (const std::exception& e) {
    return Status(Reason::kPolicyParseError, std::string("malformed JSON: ") + e.what(),
                  map.origin());
  }
  if (!dup_ptr.empty()) {
    return Status(Reason::kPolicyParseError,
                  "duplicate key \"" + dup_ptr.substr(dup_ptr.rfind('/') + 1) + "\"",
                  map.At(dup_ptr, true));
  }
  return Status::Ok();
}

Result<Json> ParseJsonPolicy(std::string_view text, const SourceMap& map) {
  JsonLimits limits;
  limits.max_bytes = kMaxPolicyBytes;
  limits.max_depth = 32;
  Result<Json> doc = ParseUntrustedJson(text, limits);
  if (!doc.ok()) {
    return Status(Reason::kPolicyParseError, std::string(doc.status().message()), map.origin());
  }
  CUSTOS_RETURN_IF_ERROR(CheckDuplicateJsonKeys(text, map));
  return doc;
}

// ---------------------------------------------------------------------------------------------
// Validation helpers

struct Node {
  const Json* j = nullptr;
  std::string path;  // dotted, for messages: "rules[2].when.target"
  std::string ptr;   // JSON pointer: "/rules/2/when/target"
};

std::string_view TypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::string:
      return "a string";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a float";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::object:
      return "a table";
    default:
      return "null";
  }
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

bool IsValidName(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameBytes) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), IsNameChar);
}

bool IsValidId(std::string_view s) {
  if (s.empty() || s.size() > kMaxIdBytes) {
    return false;
  }
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsNameChar(c) || c == '.' || c == ':'; });
}

bool IsReservedId(std::string_view id) {
  static constexpr std::string_view kReserved[] = {
      "default",     "agents",   "kernel.internal", "fs.read",    "fs.write",     "fs.deny",
      "net.connect", "net.deny", "tools.allow",     "tools.deny", "models.allow", "secrets"};
  for (std::string_view r : kReserved) {
    if (id == r) {
      return true;
    }
  }
  return id.starts_with("secrets.") || id.starts_with("agents.");
}

bool IsFileKind(SyscallKind k) {
  return k == SyscallKind::kFileRead || k == SyscallKind::kFileWrite ||
         k == SyscallKind::kFilePatch;
}

std::string JoinNames(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) {
    if (!out.empty()) {
      out += ",";
    }
    out += s;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Loader

struct BudgetTable {
  std::array<std::optional<int64_t>, 6> fields;
  std::optional<bool> unlimited;
};
constexpr std::string_view kBudgetFields[6] = {"model_tokens_in", "model_tokens_out",
                                               "tool_calls",      "wall_ms",
                                               "net_bytes_out",   "spend_micros"};

int64_t BudgetField(const BudgetLimits& b, size_t i) {
  const int64_t v[6] = {b.model_tokens_in, b.model_tokens_out, b.tool_calls,
                        b.wall_ms,         b.net_bytes_out,    b.spend_micros};
  return v[i];
}
void SetBudgetField(BudgetLimits* b, size_t i, int64_t v) {
  int64_t* f[6] = {&b->model_tokens_in, &b->model_tokens_out, &b->tool_calls,
                   &b->wall_ms,         &b->net_bytes_out,    &b->spend_micros};
  *f[i] = v;
}

// A rule's or approval's target globs, compiled for each separator its syscall kinds use.
struct TargetGlobs {
  std::vector<std::string> text;
  std::vector<Glob> path;  // '/' separator, parallel to text (if needed)
  std::vector<Glob> name;  // '.' separator
};

class Loader {
 public:
  Loader(const SourceMap& map, Json* doc, Policy::Impl* out) : map_(map), doc_(doc), p_(out) {}

  Status Run() {
    const Node root{doc_, "", ""};
    if (!doc_->is_object()) {
      return Fail(Reason::kPolicyWrongType, root, "the document must be a table");
    }
    CUSTOS_RETURN_IF_ERROR(ExpectTable(root, {"policy", "budgets", "agents", "fs", "net", "tools",
                                              "models", "secrets", "flows", "approvals", "rules"}));
    CUSTOS_RETURN_IF_ERROR(LoadPolicySection(root));
    CUSTOS_RETURN_IF_ERROR(LoadAgents(root));
    CUSTOS_RETURN_IF_ERROR(LoadFs(root));
    CUSTOS_RETURN_IF_ERROR(LoadNet(root));
    CUSTOS_RETURN_IF_ERROR(LoadTools(root));
    CUSTOS_RETURN_IF_ERROR(LoadModels(root));
    CUSTOS_RETURN_IF_ERROR(LoadSecrets(root));
    CUSTOS_RETURN_IF_ERROR(LoadFlows(root));
    CUSTOS_RETURN_IF_ERROR(LoadApprovals(root));
    CUSTOS_RETURN_IF_ERROR(LoadRules(root));
    for (auto& [ptr, value] : rewrites_) {
      (*doc_)[Json::json_pointer(ptr)] = value;
    }
    return Status::Ok();
  }

 private:
  // --- errors and typed access -----------------------------------------------------------------

  Status Fail(Reason r, const Node& n, std::string_view problem, bool at_key = false) const {
    std::string msg = n.path.empty() ? std::string(problem) : n.path + ": " + std::string(problem);
    return Status(r, std::move(msg), map_.At(n.ptr, at_key));
  }
  Status WrongType(const Node& n, std::string_view expected) const {
    return Fail(Reason::kPolicyWrongType, n,
                "expected " + std::string(expected) + ", got " + std::string(TypeName(*n.j)));
  }

  static Node Child(const Node& n, std::string_view key, const Json* j) {
    return {j, ChildPath(n.path, key), n.ptr + "/" + JsonPointerToken(key)};
  }
  static Node Elem(const Node& n, size_t i) {
    return {&(*n.j)[i], IndexPath(n.path, i), n.ptr + "/" + std::to_string(i)};
  }

  Status ExpectTable(const Node& n, std::initializer_list<std::string_view> allowed) const {
    if (!n.j->is_object()) {
      return WrongType(n, "a table");
    }
    for (auto it = n.j->begin(); it != n.j->end(); ++it) {
      if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) {
        continue;
      }
      std::string msg = "unknown key; expected one of: ";
      std::string_view best;
      size_t best_d = 3;
      bool first = true;
      for (std::string_view a : allowed) {
        msg += (first ? "" : ", ") + std::string(a);
        first = false;
        const size_t d = EditDistance(it.key(), a);
        if (d < best_d) {
          best_d = d;
          best = a;
        }
      }
      if (!best.empty()) {
        msg += " (did you mean \"" + std::string(best) + "\"?)";
      }
      return Fail(Reason::kPolicyUnknownKey, Child(n, it.key(), &it.value()), msg, true);
    }
    return Status::Ok();
  }

  static std::optional<Node> Get(const Node& t, std::string_view key) {
    auto it = t.j->find(key);
    if (it == t.j->end()) {
      return std::nullopt;
    }
    return Child(t, key, &*it);
  }

  Status Missing(const Node& t, std::string_view key) const {
    return Fail(Reason::kPolicyInvalid, t, "missing required key \"" + std::string(key) + "\"");
  }

  Status String(const Node& n, std::string* out) const {
    if (!n.j->is_string()) {
      return WrongType(n, "a string");
    }
    *out = n.j->get<std::string>();
    return Status::Ok();
  }
  Status Int(const Node& n, int64_t* out) const {
    if (n.j->is_number_unsigned()) {
      if (n.j->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Fail(Reason::kPolicyInvalid, n, "integer out of range");
      }
      *out = static_cast<int64_t>(n.j->get<uint64_t>());
      return Status::Ok();
    }
    if (!n.j->is_number_integer()) {
      return WrongType(n, "an integer");
    }
    *out = n.j->get<int64_t>();
    return Status::Ok();
  }
  Status NonNegative(const Node& n, int64_t* out) const {
    CUSTOS_RETURN_IF_ERROR(Int(n, out));
    if (*out < 0) {
      return Fail(Reason::kPolicyInvalid, n, "must not be negative");
    }
    return Status::Ok();
  }
  Status Positive(const Node& n, int64_t* out) const {
    CUSTOS_RETURN_IF_ERROR(Int(n, out));
    if (*out <= 0) {
      return Fail(Reason::kPolicyInvalid, n, "must be positive");
    }
    return Status::Ok();
  }
  Status Bool(const Node& n, bool* out) const {
    if (!n.j->is_boolean()) {
      return WrongType(n, "a boolean");
    }
    *out = n.j->get<bool>();
    return Status::Ok();
  }

  Status OptString(const Node& t, std::string_view key, std::string* out) const {
    if (auto n = Get(t, key)) {
      return String(*n, out);
    }
    return Status::Ok();
  }
  Status ReqString(const Node& t, std::string_view key, std::string* out) const {
    if (auto n = Get(t, key)) {
      return String(*n, out);
    }
    return Missing(t, key);
  }

  // Calls fn(element node, string) for each element of the array at t[key] (if present).
  template <typename Fn>
  Status ForEachString(const Node& t, std::string_view key, Fn&& fn) const {
    auto n = Get(t, key);
    if (!n) {
      return Status::Ok();
    }
    return ForEachStringIn(*n, fn);
  }
  template <typename Fn>
  Status ForEachStringIn(const Node& n, Fn&& fn) const {
    if (!n.j->is_array()) {
      return WrongType(n, "an array of strings");
    }
    for (size_t i = 0; i < n.j->size(); ++i) {
      const Node e = Elem(n, i);
      if (!e.j->is_string()) {
        return WrongType(e, "a string");
      }
      CUSTOS_RETURN_IF_ERROR(fn(e, e.j->get<std::string>()));
    }
    return Status::Ok();
  }
  // A string or an array of strings.
  template <typename Fn>
  Status ForEachStringOrList(const Node& n, Fn&& fn) const {
    if (n.j->is_string()) {
      return fn(n, n.j->get<std::string>());
    }
    if (!n.j->is_array()) {
      return WrongType(n, "a string or an array of strings");
    }
    return ForEachStringIn(n, fn);
  }

  Status SyscallList(const Node& n, SyscallSet* out) const {
    return ForEachStringIn(n, [&](const Node& e, const std::string& s) -> Status {
      if (s == "*") {
        *out = SyscallSet::All();
        return Status::Ok();
      }
      std::optional<SyscallKind> k = SyscallFromName(s);
      if (!k) {
        return Fail(Reason::kPolicyInvalid, e, "unknown syscall \"" + s + "\"");
      }
      out->Add(*k);
      return Status::Ok();
    });
  }

  Status AgentRef(const Node& e, const std::string& name) const {
    if (p_->agent_index.find(name) == p_->agent_index.end()) {
      return Fail(Reason::kPolicyInvalid, e,
                  "agent \"" + name + "\" is not defined (add an [agents." + name + "] table)");
    }
    return Status::Ok();
  }

  Status Labels(const Node& n, labels::LabelSet* out, std::string* text) const {
    std::vector<std::string> names;
    CUSTOS_RETURN_IF_ERROR(ForEachStringIn(n, [&](const Node&, const std::string& s) {
      names.push_back(s);
      return Status::Ok();
    }));
    if (names.empty()) {
      return Fail(Reason::kPolicyInvalid, n, "needs at least one label");
    }
    Result<labels::LabelSet> set = labels::LabelSet::Parse(names);
    if (!set.ok()) {
      return Fail(Reason::kPolicyInvalid, n, set.status().message());
    }
    *out = std::move(set).value();
    if (text) {
      *text = JoinNames(names);
    }
    return Status::Ok();
  }

  // "~" and "~/..." become $HOME and $HOME/...; other strings are returned unchanged. The
  // document keeps the expanded text (after `doc_prefix`), so the hash covers what applies.
  Status ExpandHome(const Node& n, const std::string& in, std::string* out,
                    std::string_view doc_prefix = "") {
    if (in.empty() || in[0] != '~') {
      *out = in;
      return Status::Ok();
    }
    if (in.size() > 1 && in[1] != '/') {
      return Fail(Reason::kPolicyBadPattern, n, "only \"~/\" is expanded (to $HOME), not ~user");
    }
    const char* home = std::getenv("HOME");
    if (home == nullptr || home[0] != '/') {
      return Fail(Reason::kPolicyInvalid, n, "\"~/\" needs $HOME set to an absolute path");
    }
    std::string h(home);
    while (h.size() > 1 && h.back() == '/') {
      h.pop_back();
    }
    *out = h + in.substr(1);
    rewrites_.emplace_back(n.ptr, std::string(doc_prefix) + *out);
    return Status::Ok();
  }

  // A path glob: "~/" expanded, absolute, no empty, "." or ".." segments, no trailing '/'.
  Result<Glob> PathGlob(const Node& n, const std::string& raw, std::string* text,
                        std::string_view doc_prefix = "") {
    CUSTOS_RETURN_IF_ERROR(ExpandHome(n, raw, text, doc_prefix));
    const std::string& t = *text;
    auto bad = [&](std::string_view why) {
      return Fail(Reason::kPolicyBadPattern, n, "bad path glob \"" + t + "\": " + std::string(why));
    };
    // "**/x" can only match absolute paths too ("**" absorbs the leading directories).
    const bool any_dir = t.starts_with("**/");
    if (!any_dir && (t.empty() || t[0] != '/')) {
      return bad("must be absolute (or start with ~/ or **/)");
    }
    size_t start = any_dir ? 3 : 1;
    while (true) {
      const size_t slash = t.find('/', start);
      const std::string_view seg(t.data() + start,
                                 (slash == std::string::npos ? t.size() : slash) - start);
      if (seg.empty()) {
        return bad(slash == std::string::npos
                       ? "ends with '/' (write \"dir/**\" for everything under dir)"
                       : "has an empty segment (\"//\")");
      }
      if (seg == "." || seg == "..") {
        return bad("has a \".\" or \"..\" segment; paths are canonical");
      }
      if (slash == std::string::npos) {
        break;
      }
      start = slash + 1;
    }
    return NameGlob(n, t, kPathSeparator);
  }

  Result<Glob> NameGlob(const Node& n, const std::string& text, char sep) const {
    Result<Glob> g = Glob::Compile(text, sep);
    if (!g.ok()) {
      return Fail(Reason::kPolicyBadPattern, n, g.status().message());
    }
    return g;
  }

  Status CheckId(const Node& n, const std::string& id) {
    if (!IsValidId(id)) {
      return Fail(Reason::kPolicyInvalid, n,
                  "id \"" + id + "\" must be 1-64 characters of [A-Za-z0-9_.:-]");
    }
    if (IsReservedId(id)) {
      return Fail(Reason::kPolicyInvalid, n, "id \"" + id + "\" is reserved for builtin decisions");
    }
    auto [it, inserted] = ids_.emplace(id, map_.At(n.ptr, false));
    if (!inserted) {
      return Fail(Reason::kPolicyDuplicateRule, n,
                  "duplicate id \"" + id + "\" (first defined at " + it->second + ")");
    }
    return Status::Ok();
  }

  // --- sections ---------------------------------------------------------------------------------

  Status LoadPolicySection(const Node& root) {
    auto n = Get(root, "policy");
    if (!n) {
      return Missing(root, "policy");
    }
    CUSTOS_RETURN_IF_ERROR(ExpectTable(*n, {"name", "mode", "description", "approval_timeout_ms"}));
    CUSTOS_RETURN_IF_ERROR(ReqString(*n, "name", &p_->name));
    if (p_->name.empty() || p_->name.size() > 128) {
      return Fail(Reason::kPolicyInvalid, *Get(*n, "name"), "must be 1-128 bytes");
    }
    std::string description;
    CUSTOS_RETURN_IF_ERROR(OptString(*n, "description", &description));
    if (auto mode = Get(*n, "mode")) {
      std::string m;
      CUSTOS_RETURN_IF_ERROR(String(*mode, &m));
      if (m != "enforce" && m != "observe") {
        return Fail(Reason::kPolicyInvalid, *mode,
                    "must be \"enforce\" or \"observe\", not \"" + m + "\"");
      }
      p_->observe = m == "observe";
    }
    if (auto t = Get(*n, "approval_timeout_ms")) {
      CUSTOS_RETURN_IF_ERROR(Positive(*t, &p_->default_approval_timeout_ms));
    }
    return Status::Ok();
  }

  Status LoadBudgetTable(const Node& n, BudgetTable* out) const {
    CUSTOS_RETURN_IF_ERROR(
        ExpectTable(n, {"model_tokens_in", "model_tokens_out", "tool_calls", "wall_ms",
                        "net_bytes_out", "spend_micros", "unlimited"}));
    for (size_t i = 0; i < 6; ++i) {
      if (auto f = Get(n, kBudgetFields[i])) {
        int64_t v = 0;
        CUSTOS_RETURN_IF_ERROR(NonNegative(*f, &v));
        out->fields[i] = v;
      }
    }
    if (auto u = Get(n, "unlimited")) {
      bool b = false;
      CUSTOS_RETURN_IF_ERROR(Bool(*u, &b));
      out->unlimited = b;
    }
    return Status::Ok();
  }

  // Per field: the agent's value; else, if the agent says `unlimited = true`, unlimited;
  // else [budgets.default]'s value; else unlimited if the defaults say so; else the builtin.
  static BudgetLimits ResolveBudget(const BudgetTable& agent, const BudgetTable& defaults) {
    constexpr int64_t kUnlimited = std::numeric_limits<int64_t>::max();
    BudgetLimits b;
    for (size_t i = 0; i < 6; ++i) {
      int64_t v = 0;
      if (agent.fields[i]) {
        v = *agent.fields[i];
      } else if (agent.unlimited.value_or(false)) {
        v = kUnlimited;
      } else if (defaults.fields[i]) {
        v = *defaults.fields[i];
      } else {
        v = defaults.unlimited.value_or(false) ? kUnlimited : BudgetField(kBuiltinBudget, i);
      }
      SetBudgetField(&b, i, v);
    }
    return b;
  }

  Status LoadAgents(const Node& root) {
    BudgetTable defaults;
    if (auto b = Get(root, "budgets")) {
      CUSTOS_RETURN_IF_ERROR(ExpectTable(*b, {"default"}));
      if (auto d = Get(*b, "default")) {
        CUSTOS_RETURN_IF_ERROR(LoadBudgetTable(*d, &defaults));
      }
    }
    auto agents = Get(root, "agents");
    if (!agents) {
      return Status::Ok();
    }
    if (!agents->j->is_object()) {
      return WrongType(*agents, "a table");
    }
    // Names first, so later sections may refer to any agent.
    for (auto it = agents->j->begin(); it != agents->j->end(); ++it) {
      if (!IsValidName(it.key())) {
        return Fail(Reason::kPolicyInvalid, Child(*agents, it.key(), &it.value()),
                    "agent names are 1-64 characters of [A-Za-z0-9_-]", true);
      }
      p_->agent_index.emplace(it.key(), p_->agents.size());
      p_->agents.push_back(AgentSpec{it.key(), {}, {}, {}});
    }
    p_->spawn_globs.resize(p_->agents.size());
    for (auto it = agents->j->begin(); it != agents->j->end(); ++it) {
      const Node a = Child(*agents, it.key(), &it.value());
      AgentSpec& spec = p_->agents[p_->agent_index.at(it.key())];
      CUSTOS_RETURN_IF_ERROR(ExpectTable(a, {"syscalls", "spawn", "budget", "description"}));
      std::string description;
      CUSTOS_RETURN_IF_ERROR(OptString(a, "description", &description));
      auto sys = Get(a, "syscalls");
      if (!sys) {
        return Missing(a, "syscalls");
      }
      CUSTOS_RETURN_IF_ERROR(SyscallList(*sys, &spec.syscalls));
      // Children are run-scoped agents named by their parent; `spawn` lists the names (or
      // name globs) a parent may give them.
      std::vector<Glob> spawn_globs;
      CUSTOS_RETURN_IF_ERROR(
          ForEachString(a, "spawn", [&](const Node& e, const std::string& s) -> Status {
            const bool ok = !s.empty() && s.size() <= kMaxNameBytes &&
                            std::all_of(s.begin(), s.end(), [](char c) {
                              return IsNameChar(c) || c == '*' || c == '?';
                            });
            if (!ok) {
              return Fail(Reason::kPolicyBadPattern, e,
                          "child names are 1-64 characters of [A-Za-z0-9_-], with * and ? as "
                          "wildcards");
            }
            CUSTOS_ASSIGN_OR_RETURN(Glob g, NameGlob(e, s, kNameSeparator));
            spec.may_spawn.push_back(s);
            spawn_globs.push_back(std::move(g));
            return Status::Ok();
          }));
      p_->spawn_globs[p_->agent_index.at(it.key())] = std::move(spawn_globs);
      BudgetTable own;
      if (auto b = Get(a, "budget")) {
        CUSTOS_RETURN_IF_ERROR(LoadBudgetTable(*b, &own));
      }
      spec.budget = ResolveBudget(own, defaults);
    }
    for (const AgentSpec& a : p_->agents) {
      p_->spawn_rule_ids.push_back("agents." + a.name + ".spawn");
      p_->syscalls_rule_ids.push_back("agents." + a.name + ".syscalls");
    }
    return Status::Ok();
  }

  Status LoadFs(const Node& root) {
    auto fs = Get(root, "fs");
    if (!fs) {
      FinishFs();
      return Status::Ok();
    }
    CUSTOS_RETURN_IF_ERROR(ExpectTable(*fs, {"read", "write", "deny"}));
    struct List {
      std::string_view key;
      GlobIndex* index;
      std::vector<std::string>* text;
    };
    for (const List& l : {List{"read", &p_->fs_read, &p_->fs_read_text},
                          List{"write", &p_->fs_write, &p_->fs_write_text},
                          List{"deny", &p_->fs_deny, &p_->fs_deny_text}}) {
      CUSTOS_RETURN_IF_ERROR(
          ForEachString(*fs, l.key, [&](const Node& e, const std::string& s) -> Status {
            std::string text;
            CUSTOS_ASSIGN_OR_RETURN(Glob glob, PathGlob(e, s, &text));
            l.index->Add(glob, kPathSeparator, static_cast<uint32_t>(l.text->size()));
            l.text->push_back(std::move(text));
            return Status::Ok();
          }));
    }
    FinishFs();
    return Status::Ok();
  }
  void FinishFs() {
    p_->fs_read.Finish();
    p_->fs_write.Finish();
    p_->fs_deny.Finish();
  }

  Status LoadNet(const Node& root) {
    auto net = Get(root, "net");
    if (!net) {
      return Status::Ok();
    }
    CUSTOS_RETURN_IF_ERROR(ExpectTable(*net, {"connect", "deny", "internal"}));
    CUSTOS_RETURN_IF_ERROR(
        ForEachString(*net, "connect", [&](const Node& e, const std::string& s) -> Status {
          Result<Endpoint> ep = Endpoint::Parse(s, /*port_required=*/true);
          if (!ep.ok()) {
            return Fail(Reason::kPolicyBadPattern, e, ep.status().message());
          }
          p_->net_connect.push_back(std::move(ep).value());
          return Status::Ok();
        }));
    CUSTOS_RETURN_IF_ERROR(
        ForEachString(*net, "deny", [&](const Node& e, const std::string& s) -> Status {
          Result<Endpoint> ep = Endpoint::Parse(s, /*port_required=*/false);
          if (!ep.ok()) {
            return Fail(Reason::kPolicyBadPattern, e, ep.status().message());
          }
          p_->net_deny.push_back(std::move(ep).value());
          return Status::Ok();
        }));
    p_->net_internal_explicit = net->j->contains("internal");
    return ForEachString(*net, "internal", [&](const Node& e, const std::string& s) -> Status {
      Result<HostPattern> hp = HostPattern::Parse(s);
      if (!hp.ok()) {
        return Fail(Reason::kPolicyBadPattern, e, hp.status().message());
      }
      p_->net_internal.push_back(std::move(hp).value());
      return Status::Ok();
    });
  }

  Status ToolPatterns(const Node& t, std::string_view key, ToolMatcher* out) const {
    return ForEachString(t, key, [&](const Node& e, const std::string& s) -> Status {
      Result<ToolPattern> tp = ToolPattern::Parse(s);
      if (!tp.ok()) {
        return Fail(Reason::kPolicyBadPattern, e, tp.status().message());
      }
      out->Add(std::move(tp).value());
      return Status::Ok();
    });
  }

  static Status CheckNoFloats(const Json& j) {
    if (j.is_number_float()) {
      return Status(Reason::kPolicyWrongType, "");
    }
    if (j.is_structured()) {
      for (const Json& c : j) {
        CUSTOS_RETURN_IF_ERROR(CheckNoFloats(c));
      }
    }
    return Status::Ok();
  }

  Status LoadTools(const Node& root) {
    auto tools = Get(root, "tools");
    if (!tools) {
      return Status::Ok();
    }
    CUSTOS_RETURN_IF_ERROR(ExpectTable(*tools, {"allow", "deny", "registry"}));
    CUSTOS_RETURN_IF_ERROR(ToolPatterns(*tools, "allow", &p_->tools_allow));
    CUSTOS_RETURN_IF_ERROR(ToolPatterns(*tools, "deny", &p_->tools_deny));
    auto reg = Get(*tools, "registry");
    if (!reg) {
      return Status::Ok();
    }
    if (!reg->j->is_array()) {
      return WrongType(*reg, "an array of tables ([[tools.registry]])");
    }
    for (size_t i = 0; i < reg->j->size(); ++i) {
      const Node t = Elem(*reg, i);
      CUSTOS_RETURN_IF_ERROR(ExpectTable(
          t, {"name", "command", "description", "input_schema", "timeout_ms", "labels"}));
      ToolSpec spec;
      CUSTOS_RETURN_IF_ERROR(ReqString(t, "name", &spec.name));
      if (!IsValidToolName(spec.name)) {
        return Fail(Reason::kPolicyInvalid, *Get(t, "name"),
                    "tool names are 1-128 printable characters without spaces, quotes or "
                    "wildcards");
      }
      if (p_->tool_index.count(spec.name) != 0) {
        return Fail(Reason::kPolicyInvalid, *Get(t, "name"),
                    "tool \"" + spec.name + "\" is registered twice");
      }
      auto cmd = Get(t, "command");
      if (!cmd) {
        return Missing(t, "command");
      }
      CUSTOS_RETURN_IF_ERROR(ForEachStringIn(*cmd, [&](const Node&, const std::string& s) {
        spec.command.push_back(s);
        return Status::Ok();
      }));
      if (spec.command.empty() || spec.command[0].empty()) {
        return Fail(Reason::kPolicyInvalid, *cmd, "needs at least the program to run");
      }
      CUSTOS_RETURN_IF_ERROR(OptString(t, "description", &spec.description));
      if (auto s = Get(t, "input_schema")) {
        if (s->j->is_string()) {
          Result<Json> parsed = ParseUntrustedJson(s->j->get<std::string>());
          if (!parsed.ok()) {
            return Fail(Reason::kPolicyWrongType, *s,
                        "input_schema is not JSON: " + std::string(parsed.status().message()));
          }
          spec.input_schema = std::move(parsed).value();
        } else {
          spec.input_schema = *s->j;
        }
        if (!spec.input_schema.is_object()) {
          return Fail(Reason::kPolicyWrongType, *s,
                      "input_schema must be a JSON Schema object (an inline table or a JSON "
                      "string)");
        }
        if (!CheckNoFloats(spec.input_schema).ok()) {
          return Fail(Reason::kPolicyWrongType, *s,
                      "input_schema contains a float; policies are integer-only (canonical JSON)");
        }
      }
      if (auto to = Get(t, "timeout_ms")) {
        CUSTOS_RETURN_IF_ERROR(Positive(*to, &spec.timeout_ms));
      }
      if (auto l = Get(t, "labels")) {
        labels::LabelSet parsed;
        CUSTOS_RETURN_IF_ERROR(Labels(*l, &parsed, nullptr));
        CUSTOS_RETURN_IF_ERROR(ForEachStringIn(*l, [&](const Node&, const std::string& s) {
          spec.labels.push_back(s);
          return Status::Ok();
        }));
      } else {
        spec.labels = {"untrusted", "external"};
      }
      p_->tool_index.emplace(spec.name, p_->tools.size());
      p_->tools.push_back(std::move(spec));
    }
    return Status::Ok();
  }

  static bool IsHttpUrl(std::string_view u) {
    for (std::string_view scheme : {"http://", "https://"}) {
      if (u.starts_with(scheme) && u.size() > scheme.size()) {
        return true;
      }
    }
    return false;
  }

  Status LoadModels(const Node& root) {
    auto models = Get(root, "models");
    if (models) {
      CUSTOS_RETURN_IF_ERROR(ExpectTable(*models, {"allow", "endpoints"}));
      CUSTOS_RETURN_IF_ERROR(
          ForEachString(*models, "allow", [&](const Node& e, const std::string& s) -> Status {
            CUSTOS_ASSIGN_OR_RETURN(Glob g, NameGlob(e, s, kPathSeparator));
            p_->models_allow.Add(g, kPathSeparator,
                                 static_cast<uint32_t>(p_->models_allow_text.size()));
            p_->models_allow_text.push_back(s);
            return Status::Ok();
          }));
      if (auto eps = Get(*models, "endpoints")) {
        if (!eps->j->is_array()) {
          return WrongType(*eps, "an array of tables ([[models.endpoints]])");
        }
        for (size_t i = 0; i < eps->j->size(); ++i) {
          const Node t = Elem(*eps, i);
          CUSTOS_RETURN_IF_ERROR(ExpectTable(
              t, {"pattern", "url", "micros_per_1k_tokens_in", "micros_per_1k_tokens_out"}));
          ModelEndpoint ep;
          CUSTOS_RETURN_IF_ERROR(ReqString(t, "pattern", &ep.pattern));
          CUSTOS_ASSIGN_OR_RETURN(Glob g, NameGlob(*Get(t, "pattern"), ep.pattern, kPathSeparator));
          CUSTOS_RETURN_IF_ERROR(ReqString(t, "url", &ep.url));
          if (!IsHttpUrl(ep.url)) {
            return Fail(Reason::kPolicyInvalid, *Get(t, "url"),
                        "must be an http:// or https:// base URL");
          }
          if (auto c = Get(t, "micros_per_1k_tokens_in")) {
            CUSTOS_RETURN_IF_ERROR(NonNegative(*c, &ep.micros_per_1k_tokens_in));
          }
          if (auto c = Get(t, "micros_per_1k_tokens_out")) {
            CUSTOS_RETURN_IF_ERROR(NonNegative(*c, &ep.micros_per_1k_tokens_out));
          }
          p_->model_endpoints.push_back(std::move(ep));
          p_->model_endpoint_globs.push_back(std::move(g));
        }
      }
    }
    p_->models_allow.Finish();
    return Status::Ok();
  }

  Status LoadSecrets(const Node& root) {
    auto secrets = Get(root, "secrets");
    if (!secrets) {
      return Status::Ok();
    }
    if (!secrets->j->is_object()) {
      return WrongType(*secrets, "a table");
    }
    for (auto it = secrets->j->begin(); it != secrets->j->end(); ++it) {
      const Node s = Child(*secrets, it.key(), &it.value());
      if (!IsValidName(it.key())) {
        return Fail(Reason::kPolicyInvalid, s, "secret names are 1-64 characters of [A-Za-z0-9_-]",
                    true);
      }
      CUSTOS_RETURN_IF_ERROR(ExpectTable(s, {"source", "agents", "destinations", "description"}));
      SecretSpec spec;
      spec.name = it.key();
      std::string description;
      CUSTOS_RETURN_IF_ERROR(OptString(s, "description", &description));
      CUSTOS_RETURN_IF_ERROR(ReqString(s, "source", &spec.source));
      const Node src = *Get(s, "source");
      if (spec.source.starts_with("env:")) {
        const std::string var = spec.source.substr(4);
        const bool ok =
            !var.empty() && !(var[0] >= '0' && var[0] <= '9') &&
            std::all_of(var.begin(), var.end(), [](char c) { return IsNameChar(c) && c != '-'; });
        if (!ok) {
          return Fail(Reason::kPolicyInvalid, src, "env:NAME needs a variable name");
        }
      } else if (spec.source.starts_with("file:")) {
        std::string path;
        CUSTOS_RETURN_IF_ERROR(ExpandHome(src, spec.source.substr(5), &path, "file:"));
        if (path.empty() || path[0] != '/') {
          return Fail(Reason::kPolicyInvalid, src, "file: needs an absolute path (or ~/)");
        }
        spec.source = "file:" + path;
      } else {
        return Fail(Reason::kPolicyInvalid, src,
                    "source must be \"env:NAME\" or \"file:/path\", not \"" + spec.source + "\"");
      }
      CUSTOS_RETURN_IF_ERROR(ForEachString(s, "agents", [&](const Node& e, const std::string& a) {
        CUSTOS_RETURN_IF_ERROR(AgentRef(e, a));
        spec.agents.push_back(a);
        return Status::Ok();
      }));
      std::vector<Endpoint> dests;
      std::vector<Glob> mcp_servers;
      CUSTOS_RETURN_IF_ERROR(
          ForEachString(s, "destinations", [&](const Node& e, const std::string& d) -> Status {
            if (d.starts_with("mcp:")) {
              Result<Glob> g = Glob::Compile(d.substr(4), '.');
              if (!g.ok())
                return Fail(Reason::kPolicyBadPattern, e,
                            "mcp: " + std::string(g.status().message()));
              spec.destinations.push_back(d);
              mcp_servers.push_back(std::move(g).value());
              return Status::Ok();
            }
            Result<Endpoint> ep = Endpoint::Parse(d, /*port_required=*/true);
            if (!ep.ok()) {
              return Fail(Reason::kPolicyBadPattern, e, ep.status().message());
            }
            spec.destinations.push_back(d);
            dests.push_back(std::move(ep).value());
            return Status::Ok();
          }));
      p_->secret_index.emplace(spec.name, p_->secrets.size());
      p_->secret_rule_ids.push_back("secrets." + spec.name);
      p_->secret_destinations.push_back(std::move(dests));
      p_->secret_mcp_servers.push_back(std::move(mcp_servers));
      p_->secrets.push_back(std::move(spec));
    }
    return Status::Ok();
  }

  Status FlowTargetOf(const Node& e, const std::string& s, FlowTarget* out) {
    out->text = s;
    const size_t colon = s.find(':');
    const std::string kind = s.substr(0, colon);
    const std::string arg = colon == std::string::npos ? "" : s.substr(colon + 1);
    const bool has_arg = colon != std::string::npos;
    auto need_arg = [&]() -> Status {
      if (!has_arg || arg.empty()) {
        return Fail(Reason::kPolicyBadPattern, e,
                    "flow target \"" + s + "\" needs a pattern after ':'");
      }
      return Status::Ok();
    };
    if (kind == "model") {
      out->kind = FlowTarget::Kind::kModel;
      if (!has_arg) {
        return Status::Ok();
      }
      CUSTOS_RETURN_IF_ERROR(need_arg());
      CUSTOS_ASSIGN_OR_RETURN(out->glob, NameGlob(e, arg, kPathSeparator));
      return Status::Ok();
    }
    CUSTOS_RETURN_IF_ERROR(need_arg());
    if (kind == "tool") {
      Result<ToolPattern> tp = ToolPattern::Parse(arg);
      if (!tp.ok()) {
        return Fail(Reason::kPolicyBadPattern, e, tp.status().message());
      }
      out->kind = FlowTarget::Kind::kTool;
      out->tool = std::move(tp).value();
      return Status::Ok();
    }
    if (kind == "net") {
      if (arg == "external") {
        out->kind = FlowTarget::Kind::kNetExternal;
        return Status::Ok();
      }
      Result<Endpoint> ep = Endpoint::Parse(arg, /*port_required=*/false);
      if (!ep.ok()) {
        return Fail(Reason::kPolicyBadPattern, e, ep.status().message());
      }
      out->kind = FlowTarget::Kind::kNet;
      out->net = std::move(ep).value();
      return Status::Ok();
    }
    if (kind == "file.write") {
      std::string text;
      CUSTOS_ASSIGN_OR_RETURN(out->glob, PathGlob(e, arg, &text, "file.write:"));
      out->kind = FlowTarget::Kind::kFileWrite;
      return Status::Ok();
    }
    if (kind == "secret" || kind == "agent") {
      CUSTOS_ASSIGN_OR_RETURN(out->glob, NameGlob(e, arg, kNameSeparator));
      out->kind = kind == "secret" ? FlowTarget::Kind::kSecret : FlowTarget::Kind::kAgent;
      return Status::Ok();
    }
    if (kind == "syscall") {
      std::optional<SyscallKind> k = SyscallFromName(arg);
      if (!k) {
        return Fail(Reason::kPolicyInvalid, e, "unknown syscall \"" + arg + "\"");
      }
      out->kind = FlowTarget::Kind::kSyscall;
      out->syscall = *k;
      return Status::Ok();
    }
    return Fail(Reason::kPolicyBadPattern, e,
                "unknown flow target \"" + s +
                    "\"; expected tool:<pattern>, net:external, net:<host>, model, "
                    "model:<glob>, file.write:<glob>, secret:<name>, syscall:<kind> or "
                    "agent:<name>");
  }

  Status Verb(const Node& n, std::initializer_list<std::pair<std::string_view, Verdict>> choices,
              Verdict* out) const {
    std::string v;
    CUSTOS_RETURN_IF_ERROR(String(n, &v));
    std::string expected;
    for (const auto& [name, verdict] : choices) {
      if (v == name) {
        *out = verdict;
        return Status::Ok();
      }
      expected += (expected.empty() ? "\"" : ", \"") + std::string(name) + "\"";
    }
    return Fail(Reason::kPolicyInvalid, n, "must be one of " + expected + ", not \"" + v + "\"");
  }

  Status Timeout(const Node& t, const std::string& id, bool applies) {
    int64_t timeout = p_->default_approval_timeout_ms;
    if (auto n = Get(t, "timeout_ms")) {
      if (!applies) {
        return Fail(Reason::kPolicyInvalid, *n, "timeout_ms only applies to require_approval");
      }
      CUSTOS_RETURN_IF_ERROR(Positive(*n, &timeout));
    }
    if (applies) {
      p_->approval_timeouts[id] = timeout;
    }
    return Status::Ok();
  }

  Status LoadFlows(const Node& root) {
    auto flows = Get(root, "flows");
    if (!flows) {
      return Status::Ok();
    }
    if (!flows->j->is_array()) {
      return WrongType(*flows, "an array of tables ([[flows]])");
    }
    for (size_t i = 0; i < flows->j->size(); ++i) {
      const Node f = Elem(*flows, i);
      CUSTOS_RETURN_IF_ERROR(
          ExpectTable(f, {"id", "from", "to", "action", "message", "timeout_ms"}));
      CompiledFlow flow;
      CUSTOS_RETURN_IF_ERROR(ReqString(f, "id", &flow.id));
      CUSTOS_RETURN_IF_ERROR(CheckId(*Get(f, "id"), flow.id));
      auto from = Get(f, "from");
      if (!from) {
        return Missing(f, "from");
      }
      CUSTOS_RETURN_IF_ERROR(Labels(*from, &flow.from, &flow.from_text));
      auto to = Get(f, "to");
      if (!to) {
        return Missing(f, "to");
      }
      CUSTOS_RETURN_IF_ERROR(ForEachStringIn(*to, [&](const Node& e, const std::string& s) {
        FlowTarget target;
        CUSTOS_RETURN_IF_ERROR(FlowTargetOf(e, s, &target));
        flow.to.push_back(std::move(target));
        return Status::Ok();
      }));
      if (flow.to.empty()) {
        return Fail(Reason::kPolicyInvalid, *to, "needs at least one target");
      }
      if (auto a = Get(f, "action")) {
        CUSTOS_RETURN_IF_ERROR(
            Verb(*a, {{"deny", Verdict::kDeny}, {"require_approval", Verdict::kRequireApproval}},
                 &flow.action));
      }
      CUSTOS_RETURN_IF_ERROR(OptString(f, "message", &flow.message));
      CUSTOS_RETURN_IF_ERROR(Timeout(f, flow.id, flow.action == Verdict::kRequireApproval));
      p_->flows.push_back(std::move(flow));
    }
    return Status::Ok();
  }

  // Target globs for a rule or approval whose syscall kinds are `kinds`.
  Status Targets(const Node& n, SyscallSet kinds, TargetGlobs* out) {
    bool need_path = false;
    bool need_name = false;
    bool only_files = true;
    for (SyscallKind k : AllSyscalls()) {
      if (!kinds.Contains(k)) {
        continue;
      }
      (TargetSeparator(k) == kPathSeparator ? need_path : need_name) = true;
      only_files = only_files && IsFileKind(k);
    }
    return ForEachStringOrList(n, [&](const Node& e, const std::string& raw) -> Status {
      std::string text;
      CUSTOS_RETURN_IF_ERROR(ExpandHome(e, raw, &text));
      if (only_files && !text.empty() && text[0] != '/' && text[0] != '*') {
        return Fail(Reason::kPolicyBadPattern, e,
                    "file targets are absolute paths (or start with ~/), not \"" + text + "\"");
      }
      if (need_path) {
        CUSTOS_ASSIGN_OR_RETURN(Glob g, NameGlob(e, text, kPathSeparator));
        out->path.push_back(std::move(g));
      }
      if (need_name) {
        CUSTOS_ASSIGN_OR_RETURN(Glob g, NameGlob(e, text, kNameSeparator));
        out->name.push_back(std::move(g));
      }
      out->text.push_back(std::move(text));
      return Status::Ok();
    });
  }

  static void Index(SyscallSet kinds, const TargetGlobs& targets, uint32_t id,
                    std::array<GlobIndex, kSyscallKindCount>* index) {
    for (SyscallKind k : AllSyscalls()) {
      if (!kinds.Contains(k)) {
        continue;
      }
      GlobIndex& gi = (*index)[static_cast<size_t>(k)];
      if (targets.text.empty()) {
        gi.AddAny(id);
        continue;
      }
      const char sep = TargetSeparator(k);
      for (const Glob& g : sep == kPathSeparator ? targets.path : targets.name) {
        gi.Add(g, sep, id);
      }
    }
  }

  Status LoadApprovals(const Node& root) {
    auto approvals = Get(root, "approvals");
    if (approvals) {
      if (!approvals->j->is_array()) {
        return WrongType(*approvals, "an array of tables ([[approvals]])");
      }
      for (size_t i = 0; i < approvals->j->size(); ++i) {
        const Node a = Elem(*approvals, i);
        CUSTOS_RETURN_IF_ERROR(
            ExpectTable(a, {"id", "syscall", "target", "agents", "timeout_ms", "message"}));
        CompiledApproval ap;
        ap.at = map_.At(a.ptr, false);
        CUSTOS_RETURN_IF_ERROR(ReqString(a, "id", &ap.id));
        CUSTOS_RETURN_IF_ERROR(CheckId(*Get(a, "id"), ap.id));
        auto sys = Get(a, "syscall");
        if (!sys) {
          return Missing(a, "syscall");
        }
        SyscallSet kinds;
        CUSTOS_RETURN_IF_ERROR(SyscallList(*sys, &kinds));
        if (kinds.empty()) {
          return Fail(Reason::kPolicyInvalid, *sys, "needs at least one syscall");
        }
        TargetGlobs targets;
        if (auto t = Get(a, "target")) {
          CUSTOS_RETURN_IF_ERROR(Targets(*t, kinds, &targets));
        }
        CUSTOS_RETURN_IF_ERROR(ForEachString(a, "agents", [&](const Node& e, const std::string& s) {
          CUSTOS_RETURN_IF_ERROR(AgentRef(e, s));
          ap.agents.push_back(s);
          return Status::Ok();
        }));
        CUSTOS_RETURN_IF_ERROR(OptString(a, "message", &ap.message));
        CUSTOS_RETURN_IF_ERROR(Timeout(a, ap.id, true));
        Index(kinds, targets, static_cast<uint32_t>(p_->approvals.size()), &p_->approval_index);
        p_->approvals.push_back(std::move(ap));
      }
    }
    for (GlobIndex& gi : p_->approval_index) {
      gi.Finish();
    }
    return Status::Ok();
  }

  Status LoadRules(const Node& root) {
    auto rules = Get(root, "rules");
    if (rules) {
      if (!rules->j->is_array()) {
        return WrongType(*rules, "an array of tables ([[rules]])");
      }
      for (size_t i = 0; i < rules->j->size(); ++i) {
        const Node r = Elem(*rules, i);
        CUSTOS_RETURN_IF_ERROR(ExpectTable(r, {"id", "effect", "when", "message", "timeout_ms"}));
        CompiledRule rule;
        rule.at = map_.At(r.ptr, false);
        CUSTOS_RETURN_IF_ERROR(ReqString(r, "id", &rule.id));
        CUSTOS_RETURN_IF_ERROR(CheckId(*Get(r, "id"), rule.id));
        auto effect = Get(r, "effect");
        if (!effect) {
          return Missing(r, "effect");
        }
        CUSTOS_RETURN_IF_ERROR(Verb(*effect,
                                    {{"allow", Verdict::kAllow},
                                     {"deny", Verdict::kDeny},
                                     {"require_approval", Verdict::kRequireApproval}},
                                    &rule.effect));
        CUSTOS_RETURN_IF_ERROR(OptString(r, "message", &rule.message));
        CUSTOS_RETURN_IF_ERROR(Timeout(r, rule.id, rule.effect == Verdict::kRequireApproval));
        SyscallSet kinds = SyscallSet::All();
        TargetGlobs targets;
        if (auto w = Get(r, "when")) {
          CUSTOS_RETURN_IF_ERROR(
              ExpectTable(*w, {"syscall", "target", "agent", "labels_reach", "labels_below"}));
          if (auto sys = Get(*w, "syscall")) {
            kinds = SyscallSet();
            CUSTOS_RETURN_IF_ERROR(SyscallList(*sys, &kinds));
            if (kinds.empty()) {
              return Fail(Reason::kPolicyInvalid, *sys, "needs at least one syscall");
            }
          }
          if (auto t = Get(*w, "target")) {
            CUSTOS_RETURN_IF_ERROR(Targets(*t, kinds, &targets));
          }
          if (auto a = Get(*w, "agent")) {
            CUSTOS_RETURN_IF_ERROR(
                ForEachStringOrList(*a, [&](const Node& e, const std::string& s) {
                  CUSTOS_RETURN_IF_ERROR(AgentRef(e, s));
                  rule.agents.push_back(s);
                  return Status::Ok();
                }));
          }
          if (auto l = Get(*w, "labels_reach")) {
            labels::LabelSet set;
            CUSTOS_RETURN_IF_ERROR(Labels(*l, &set, nullptr));
            rule.labels_reach = std::move(set);
          }
          if (auto l = Get(*w, "labels_below")) {
            labels::LabelSet set;
            CUSTOS_RETURN_IF_ERROR(Labels(*l, &set, nullptr));
            rule.labels_below = std::move(set);
          }
        }
        rule.targets = targets.text;
        Index(kinds, targets, static_cast<uint32_t>(p_->rules.size()), &p_->rule_index);
        p_->rules.push_back(std::move(rule));
      }
    }
    for (GlobIndex& gi : p_->rule_index) {
      gi.Finish();
    }
    return Status::Ok();
  }

  const SourceMap& map_;
  Json* doc_;
  Policy::Impl* p_;
  std::unordered_map<std::string, std::string> ids_;           // id -> where first defined
  std::vector<std::pair<std::string, std::string>> rewrites_;  // JSON pointer -> expanded text
};

}  // namespace

char TargetSeparator(SyscallKind k) {
  switch (k) {
    case SyscallKind::kToolDescribe:
    case SyscallKind::kToolInvoke:
    case SyscallKind::kToolResponse:
    case SyscallKind::kSecretOpen:
    case SyscallKind::kAgentSpawn:
    case SyscallKind::kAgentSend:
    case SyscallKind::kAgentRecv:
      return kNameSeparator;
    default:
      return kPathSeparator;
  }
}

Result<std::unique_ptr<Policy::Impl>> LoadImpl(std::string_view text, std::string_view origin,
                                               bool json) {
  if (text.size() > kMaxPolicyBytes) {
    return Status(Reason::kPolicyParseError,
                  "policy of " + std::to_string(text.size()) + " bytes exceeds " +
                      std::to_string(kMaxPolicyBytes),
                  std::string(origin));
  }
  SourceMap map(origin, json);
  Result<Json> parsed = json ? ParseJsonPolicy(text, map) : ParseToml(text, &map);
  if (!parsed.ok()) {
    return parsed.status();
  }
  Json doc = std::move(parsed).value();
  auto impl = std::make_unique<Policy::Impl>();
  CUSTOS_RETURN_IF_ERROR(Loader(map, &doc, impl.get()).Run());
  Result<std::string> canonical = CanonicalJson(doc);
  if (!canonical.ok()) {
    return Status(
        Reason::kPolicyWrongType,
        "policy cannot be encoded canonically: " + std::string(canonical.status().message()),
        std::string(origin));
  }
  impl->hash = crypto::Sha256(*canonical).Hex();
  return impl;
}

}  // namespace custos::policy::internal
