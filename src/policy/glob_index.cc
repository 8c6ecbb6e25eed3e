#include <algorithm>

#include "policy/glob_index_internal.h"

namespace custos::policy::internal {

std::string_view IndexPrefix(std::string_view pattern, char separator) {
  const size_t first = pattern.find_first_of("*?");
  if (first == std::string_view::npos) {
    return pattern;
  }
  std::string_view prefix = pattern.substr(0, first);
  const bool double_star = first + 1 < pattern.size() && pattern[first + 1] == '*';
  if (double_star && !prefix.empty() && prefix.back() == separator) {
    prefix.remove_suffix(1);
  }
  return prefix;
}

GlobIndex::GlobIndex() { nodes_.emplace_back(); }

uint32_t GlobIndex::Child(uint32_t node, char c) const {
  const auto& kids = nodes_[node].kids;
  auto it =
      std::lower_bound(kids.begin(), kids.end(), c,
                       [](const std::pair<char, uint32_t>& k, char v) { return k.first < v; });
  return (it != kids.end() && it->first == c) ? it->second : kNone;
}

uint32_t GlobIndex::ChildOrAdd(uint32_t node, char c) {
  const uint32_t existing = Child(node, c);
  if (existing != kNone) {
    return existing;
  }
  const auto next = static_cast<uint32_t>(nodes_.size());
  nodes_.emplace_back();
  auto& kids = nodes_[node].kids;
  auto it =
      std::lower_bound(kids.begin(), kids.end(), c,
                       [](const std::pair<char, uint32_t>& k, char v) { return k.first < v; });
  kids.insert(it, {c, next});
  return next;
}

void GlobIndex::Add(const Glob& glob, char separator, uint32_t id) {
  ++count_;
  if (glob.is_literal()) {
    exact_[glob.pattern()].push_back(id);
    return;
  }
  uint32_t node = 0;
  for (char c : IndexPrefix(glob.pattern(), separator)) {
    node = ChildOrAdd(node, c);
  }
  nodes_[node].entries.push_back({id, static_cast<uint32_t>(globs_.size())});
  globs_.push_back(glob);
}

void GlobIndex::AddAny(uint32_t id) {
  ++count_;
  any_.push_back({id, kNone});
}

void GlobIndex::Finish() {
  auto by_id = [](const Entry& a, const Entry& b) { return a.id < b.id; };
  for (auto& [key, ids] : exact_) {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  }
  for (Node& n : nodes_) {
    std::stable_sort(n.entries.begin(), n.entries.end(), by_id);
  }
  std::stable_sort(any_.begin(), any_.end(), by_id);
}

}  // namespace custos::policy::internal
