#pragma once
// GlobIndex finds, among many globs, the one with the lowest id that matches a text, without
// trying every glob: literal patterns sit in a hash map, the others in a byte trie keyed by their
// literal prefix, so a lookup walks the text once and tries only globs whose prefix it has. Ids
// are priorities (a rule's position in the file); First() returns the lowest accepted id, which is
// how "first match wins" stays exact under indexing.
//
// Lookups never allocate. Thread-compatible: immutable after Finish().

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "custos/core/glob.h"

namespace custos::policy::internal {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// The part of `pattern` every match must start with. Shorter than Glob::literal_prefix() when
// the first wildcard is a `**` right after a separator, because "/a/**" may match "/a".
std::string_view IndexPrefix(std::string_view pattern, char separator);

class GlobIndex {
 public:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

  GlobIndex();

  // `separator` must be the one `glob` was compiled with. REQUIRES: not finished.
  void Add(const Glob& glob, char separator, uint32_t id);
  // An entry that matches every text (a rule without a target).
  void AddAny(uint32_t id);
  // Sorts the candidate lists; call once after the last Add.
  void Finish();

  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }

  // The lowest id < `limit` whose glob matches `text` and for which accept(id) is true;
  // kNone if there is none. `accept` must not allocate for First() not to.
  template <typename Accept>
  uint32_t First(std::string_view text, Accept&& accept, uint32_t limit = kNone) const;

  uint32_t First(std::string_view text) const {
    return First(text, [](uint32_t) { return true; });
  }

 private:
  struct Entry {
    uint32_t id;
    uint32_t glob;  // index into globs_; kNone for AddAny entries
  };
  struct Node {
    std::vector<std::pair<char, uint32_t>> kids;  // sorted by char
    std::vector<Entry> entries;                   // sorted by id
  };

  uint32_t Child(uint32_t node, char c) const;
  uint32_t ChildOrAdd(uint32_t node, char c);

  template <typename Accept>
  void Scan(const std::vector<Entry>& entries, std::string_view text, Accept& accept,
            uint32_t* best) const;

  std::vector<Glob> globs_;
  StringMap<std::vector<uint32_t>> exact_;  // literal pattern -> ids, sorted
  std::vector<Node> nodes_;                 // nodes_[0] is the root (empty prefix)
  std::vector<Entry> any_;
  size_t count_ = 0;
};

template <typename Accept>
void GlobIndex::Scan(const std::vector<Entry>& entries, std::string_view text, Accept& accept,
                     uint32_t* best) const {
  for (const Entry& e : entries) {
    if (e.id >= *best) {
      return;
    }
    if ((e.glob == kNone || globs_[e.glob].Matches(text)) && accept(e.id)) {
      *best = e.id;
      return;
    }
  }
}

template <typename Accept>
uint32_t GlobIndex::First(std::string_view text, Accept&& accept, uint32_t limit) const {
  uint32_t best = limit;
  if (count_ == 0) {
    return kNone;
  }
  if (!exact_.empty()) {
    if (auto it = exact_.find(text); it != exact_.end()) {
      for (uint32_t id : it->second) {
        if (id >= best) {
          break;
        }
        if (accept(id)) {
          best = id;
          break;
        }
      }
    }
  }
  Scan(any_, text, accept, &best);
  uint32_t node = 0;
  for (size_t i = 0;; ++i) {
    Scan(nodes_[node].entries, text, accept, &best);
    if (i == text.size()) {
      break;
    }
    node = Child(node, text[i]);
    if (node == kNone) {
      break;
    }
  }
  return best == limit ? kNone : best;
}

}  // namespace custos::policy::internal
