#pragma once
// LabelSet is the information-flow label every kernel value carries (DESIGN.md "Labels").
// Three independent parts, each a join-semilattice:
//   integrity:        trusted < untrusted < poisoned-suspect      (join = the worse)
//   confidentiality:  public  < private   < secret                (join = the higher)
//   tags:             a set of strings (`external`, `source:<host>`, ...)  (join = union)
// Labels only rise (INV-5): Join never lowers any part; only the kernel's recorded declassification
// builds a lower label.
//
// The names users write (`trusted`, `untrusted`, `poisoned-suspect`, `public`, `private`,
// `secret`, and any tag) parse with Parse(); unknown names are tags, except that tags must match
// [a-z0-9:._/-]{1,128} (kInvalidArgument otherwise, with `at` = "/<index>"). Several level names
// in one list join (["trusted","untrusted"] is untrusted). The constructor and AddTag() take
// strings from code that may not control them (host names): they never fail, but lowercase ASCII,
// turn other bytes outside the tag alphabet into '_', cut to 128 bytes, and treat a level name
// ("secret") as raising that level, so tags() only ever holds valid, non-level tags and Names()
// re-parses to an equal set.
//
// Thread-compatible.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "custos/core/json.h"
#include "custos/core/result.h"

namespace custos::labels {

enum class Integrity : uint8_t { kTrusted = 0, kUntrusted = 1, kPoisonedSuspect = 2 };
enum class Confidentiality : uint8_t { kPublic = 0, kPrivate = 1, kSecret = 2 };

std::string_view IntegrityName(Integrity i);
std::string_view ConfidentialityName(Confidentiality c);

class LabelSet {
 public:
  LabelSet() = default;  // trusted, public, no tags: the bottom element
  LabelSet(Integrity i, Confidentiality c, std::vector<std::string> tags = {});

  // What raw caller input gets when the caller declares nothing.
  static LabelSet Untrusted() { return LabelSet(Integrity::kUntrusted, Confidentiality::kPublic); }

  // Parses a list of label names, e.g. ["untrusted", "external", "source:example.com"].
  static Result<LabelSet> Parse(const std::vector<std::string>& names);
  // An array of names. kSchemaViolation if `j` is not an array of strings.
  static Result<LabelSet> FromJson(const Json& j);

  Integrity integrity() const { return integrity_; }
  Confidentiality confidentiality() const { return confidentiality_; }
  const std::vector<std::string>& tags() const { return tags_; }  // sorted, unique

  void AddTag(std::string_view tag);
  bool HasTag(std::string_view tag) const;

  // The least upper bound.
  LabelSet Join(const LabelSet& other) const;
  void JoinWith(const LabelSet& other);

  // True if every part of *this is at least `other` (this ⊒ other): integrity no better,
  // confidentiality no lower, tags a superset. A flow rule `from = X` matches when labels Reaches
  // X.
  bool Reaches(const LabelSet& other) const;

  // Names, in a stable order: integrity, confidentiality, then tags. Bottom parts are included
  // ("trusted", "public") so the log is explicit.
  std::vector<std::string> Names() const;
  Json ToJson() const;
  std::string ToString() const;  // "untrusted,private,external"

  bool operator==(const LabelSet&) const = default;

 private:
  Integrity integrity_ = Integrity::kTrusted;
  Confidentiality confidentiality_ = Confidentiality::kPublic;
  std::vector<std::string> tags_;
};

}  // namespace custos::labels
