#include "custos/labels/label_set.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>

namespace custos::labels {
namespace {

constexpr size_t kMaxTagBytes = 128;

bool IsTagChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '.' || c == '_' ||
         c == '/' || c == '-';
}

bool IsValidTagName(std::string_view s) {
  return !s.empty() && s.size() <= kMaxTagBytes && std::all_of(s.begin(), s.end(), IsTagChar);
}

std::optional<Integrity> IntegrityFromName(std::string_view s) {
  if (s == "trusted")
    return Integrity::kTrusted;
  if (s == "untrusted")
    return Integrity::kUntrusted;
  if (s == "poisoned-suspect")
    return Integrity::kPoisonedSuspect;
  return std::nullopt;
}

std::optional<Confidentiality> ConfidentialityFromName(std::string_view s) {
  if (s == "public")
    return Confidentiality::kPublic;
  if (s == "private")
    return Confidentiality::kPrivate;
  if (s == "secret")
    return Confidentiality::kSecret;
  return std::nullopt;
}

// Maps arbitrary bytes onto the tag alphabet: ASCII letters are lowercased, anything else outside
// [a-z0-9:._/-] becomes '_', and the result is cut to 128 bytes ("_" if empty). Used by AddTag and
// the constructor, whose callers may pass data (host names) they do not control.
std::string NormalizeTag(std::string_view s) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxTagBytes));
  for (const char c : s.substr(0, kMaxTagBytes)) {
    if (c >= 'A' && c <= 'Z') {
      out.push_back(static_cast<char>(c - 'A' + 'a'));
    } else {
      out.push_back(IsTagChar(c) ? c : '_');
    }
  }
  if (out.empty())
    out = "_";
  return out;
}

void SortUnique(std::vector<std::string>* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

}  // namespace

std::string_view IntegrityName(Integrity i) {
  switch (i) {
    case Integrity::kTrusted:
      return "trusted";
    case Integrity::kUntrusted:
      return "untrusted";
    case Integrity::kPoisonedSuspect:
      return "poisoned-suspect";
  }
  return "poisoned-suspect";  // out-of-range values are treated as the worst
}

std::string_view ConfidentialityName(Confidentiality c) {
  switch (c) {
    case Confidentiality::kPublic:
      return "public";
    case Confidentiality::kPrivate:
      return "private";
    case Confidentiality::kSecret:
      return "secret";
  }
  return "secret";  // out-of-range values are treated as the highest
}

LabelSet::LabelSet(Integrity i, Confidentiality c, std::vector<std::string> tags)
    : integrity_(i), confidentiality_(c) {
  for (const std::string& t : tags)
    AddTag(t);
}

Result<LabelSet> LabelSet::Parse(const std::vector<std::string>& names) {
  LabelSet out;
  for (size_t k = 0; k < names.size(); ++k) {
    const std::string& name = names[k];
    if (auto i = IntegrityFromName(name)) {
      out.integrity_ = std::max(out.integrity_, *i);
    } else if (auto c = ConfidentialityFromName(name)) {
      out.confidentiality_ = std::max(out.confidentiality_, *c);
    } else if (IsValidTagName(name)) {
      out.tags_.push_back(name);
    } else {
      // Quote at most a bounded excerpt: label names come from requests.
      return Status(Reason::kInvalidArgument,
                    "label \"" + NormalizeTag(name).substr(0, 32) +
                        "\" is not a level name and not a valid tag ([a-z0-9:._/-]{1,128})",
                    "/" + std::to_string(k));
    }
  }
  SortUnique(&out.tags_);
  return out;
}

Result<LabelSet> LabelSet::FromJson(const Json& j) {
  if (!j.is_array()) {
    return Status(Reason::kSchemaViolation, "labels must be an array of strings");
  }
  std::vector<std::string> names;
  names.reserve(j.size());
  for (size_t k = 0; k < j.size(); ++k) {
    if (!j[k].is_string()) {
      return Status(Reason::kSchemaViolation, "label must be a string", "/" + std::to_string(k));
    }
    names.push_back(j[k].get<std::string>());
  }
  return Parse(names);
}

void LabelSet::AddTag(std::string_view tag) {
  std::string t = IsValidTagName(tag) ? std::string(tag) : NormalizeTag(tag);
  // A level name raises that part: tags never shadow a level, so Names() always re-parses to an
  // equal set.
  if (auto i = IntegrityFromName(t)) {
    integrity_ = std::max(integrity_, *i);
    return;
  }
  if (auto c = ConfidentialityFromName(t)) {
    confidentiality_ = std::max(confidentiality_, *c);
    return;
  }
  auto it = std::lower_bound(tags_.begin(), tags_.end(), t);
  if (it == tags_.end() || *it != t)
    tags_.insert(it, std::move(t));
}

bool LabelSet::HasTag(std::string_view tag) const {
  return std::binary_search(tags_.begin(), tags_.end(), tag, std::less<>());
}

LabelSet LabelSet::Join(const LabelSet& other) const {
  LabelSet out = *this;
  out.JoinWith(other);
  return out;
}

void LabelSet::JoinWith(const LabelSet& other) {
  integrity_ = std::max(integrity_, other.integrity_);
  confidentiality_ = std::max(confidentiality_, other.confidentiality_);
  if (other.tags_.empty() ||
      std::includes(tags_.begin(), tags_.end(), other.tags_.begin(), other.tags_.end())) {
    return;
  }
  std::vector<std::string> merged;
  merged.reserve(tags_.size() + other.tags_.size());
  std::set_union(tags_.begin(), tags_.end(), other.tags_.begin(), other.tags_.end(),
                 std::back_inserter(merged));
  tags_ = std::move(merged);
}

bool LabelSet::Reaches(const LabelSet& other) const {
  return integrity_ >= other.integrity_ && confidentiality_ >= other.confidentiality_ &&
         std::includes(tags_.begin(), tags_.end(), other.tags_.begin(), other.tags_.end());
}

std::vector<std::string> LabelSet::Names() const {
  std::vector<std::string> out;
  out.reserve(2 + tags_.size());
  out.emplace_back(IntegrityName(integrity_));
  out.emplace_back(ConfidentialityName(confidentiality_));
  out.insert(out.end(), tags_.begin(), tags_.end());
  return out;
}

Json LabelSet::ToJson() const { return Json(Names()); }

std::string LabelSet::ToString() const {
  std::string out;
  for (const std::string& n : Names()) {
    if (!out.empty())
      out.push_back(',');
    out += n;
  }
  return out;
}

}  // namespace custos::labels
