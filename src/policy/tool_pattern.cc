#include "policy/policy_internal.h"

namespace custos::policy::internal {

bool IsValidToolName(std::string_view name) {
  if (name.empty() || name.size() > 128) {
    return false;
  }
  for (char c : name) {
    const bool printable = c > 0x20 && c < 0x7f;
    if (!printable || c == '*' || c == '?' || c == '"' || c == '\'' || c == '\\' || c == '[' ||
        c == ']' || c == '{' || c == '}') {
      return false;
    }
  }
  return name.front() != '.' && name.back() != '.' && name.find("..") == std::string_view::npos;
}

Result<ToolPattern> ToolPattern::Parse(std::string_view text) {
  ToolPattern p;
  p.text = std::string(text);
  if (text == "*") {
    p.kind = Kind::kAny;
    return p;
  }
  if (text.size() > 2 && text.ends_with(".*")) {
    const std::string_view prefix = text.substr(0, text.size() - 2);
    if (IsValidToolName(prefix)) {
      p.kind = Kind::kPrefix;
      p.key = std::string(prefix) + ".";
      return p;
    }
  } else if (IsValidToolName(text)) {
    p.kind = Kind::kExact;
    p.key = std::string(text);
    return p;
  }
  return Status(Reason::kPolicyBadPattern,
                "bad tool pattern \"" + std::string(text) +
                    "\": write an exact name (\"fs.read_file\"), a prefix (\"shell.*\", every "
                    "tool under \"shell.\") or \"*\"; no other wildcards, spaces or quotes");
}

bool ToolPattern::Matches(std::string_view name) const {
  switch (kind) {
    case Kind::kAny:
      return !name.empty();
    case Kind::kExact:
      return name == key;
    case Kind::kPrefix:
      return name.size() > key.size() && name.starts_with(key);
  }
  return false;
}

void ToolMatcher::Add(ToolPattern p) {
  const size_t i = patterns_.size();
  if (p.kind == ToolPattern::Kind::kExact) {
    exact_.emplace(p.key, i);
  } else {
    wild_.push_back(i);
  }
  patterns_.push_back(std::move(p));
}

const ToolPattern* ToolMatcher::Match(std::string_view name) const {
  if (auto it = exact_.find(name); it != exact_.end()) {
    return &patterns_[it->second];
  }
  for (size_t i : wild_) {
    if (patterns_[i].Matches(name)) {
      return &patterns_[i];
    }
  }
  return nullptr;
}

}  // namespace custos::policy::internal
