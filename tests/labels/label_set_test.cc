#include "custos/labels/label_set.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "testing/matchers.h"

namespace custos::labels {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::testing::ElementsAre;

// A small universe covering every integrity/confidentiality pair and several tag sets, on which
// the lattice laws are checked exhaustively.
std::vector<LabelSet> Universe() {
  const std::vector<std::vector<std::string>> tag_sets = {
      {}, {"external"}, {"source:a.example"}, {"external", "source:a.example"}, {"z", "a"}};
  std::vector<LabelSet> out;
  for (int i = 0; i < 3; ++i) {
    for (int c = 0; c < 3; ++c) {
      for (const auto& tags : tag_sets) {
        out.emplace_back(static_cast<Integrity>(i), static_cast<Confidentiality>(c), tags);
      }
    }
  }
  return out;
}

TEST(LabelSetTest, DefaultIsBottom) {
  const LabelSet bottom;
  EXPECT_EQ(bottom.integrity(), Integrity::kTrusted);
  EXPECT_EQ(bottom.confidentiality(), Confidentiality::kPublic);
  EXPECT_TRUE(bottom.tags().empty());
  for (const LabelSet& x : Universe()) {
    EXPECT_TRUE(x.Reaches(bottom)) << x.ToString();
    EXPECT_EQ(x.Join(bottom), x) << x.ToString();
  }
}

TEST(LabelSetTest, JoinIsCommutativeAssociativeIdempotent) {
  const std::vector<LabelSet> u = Universe();
  for (const LabelSet& a : u) {
    EXPECT_EQ(a.Join(a), a);
    for (const LabelSet& b : u) {
      EXPECT_EQ(a.Join(b), b.Join(a)) << a.ToString() << " | " << b.ToString();
    }
  }
  // Associativity over a strided subset keeps the cube small.
  for (size_t i = 0; i < u.size(); i += 3) {
    for (size_t j = 1; j < u.size(); j += 4) {
      for (size_t k = 2; k < u.size(); k += 5) {
        EXPECT_EQ(u[i].Join(u[j]).Join(u[k]), u[i].Join(u[j].Join(u[k])));
      }
    }
  }
}

TEST(LabelSetTest, JoinIsLeastUpperBound) {
  const std::vector<LabelSet> u = Universe();
  for (const LabelSet& a : u) {
    for (const LabelSet& b : u) {
      const LabelSet j = a.Join(b);
      EXPECT_TRUE(j.Reaches(a));
      EXPECT_TRUE(j.Reaches(b));
      for (const LabelSet& c : u) {
        if (c.Reaches(a) && c.Reaches(b)) {
          EXPECT_TRUE(c.Reaches(j)) << c.ToString() << " over " << j.ToString();
        }
      }
    }
  }
}

TEST(LabelSetTest, ReachesIsAPartialOrderMatchingJoin) {
  const std::vector<LabelSet> u = Universe();
  for (const LabelSet& a : u) {
    EXPECT_TRUE(a.Reaches(a));
    for (const LabelSet& b : u) {
      // a ⊒ b exactly when joining b changes nothing.
      EXPECT_EQ(a.Reaches(b), a.Join(b) == a) << a.ToString() << " / " << b.ToString();
      if (a.Reaches(b) && b.Reaches(a)) {
        EXPECT_EQ(a, b);
      }
      for (const LabelSet& c : u) {
        if (a.Reaches(b) && b.Reaches(c)) {
          EXPECT_TRUE(a.Reaches(c));
        }
      }
    }
  }
}

TEST(LabelSetTest, JoinNeverLowersAnyPart) {
  LabelSet l(Integrity::kPoisonedSuspect, Confidentiality::kSecret, {"x"});
  l.JoinWith(LabelSet());
  l.JoinWith(LabelSet::Untrusted());
  EXPECT_EQ(l.integrity(), Integrity::kPoisonedSuspect);
  EXPECT_EQ(l.confidentiality(), Confidentiality::kSecret);
  EXPECT_TRUE(l.HasTag("x"));
}

TEST(LabelSetTest, JoinTakesWorseIntegrityHigherConfidentialityAndTagUnion) {
  const LabelSet a(Integrity::kUntrusted, Confidentiality::kPublic, {"external"});
  const LabelSet b(Integrity::kTrusted, Confidentiality::kSecret, {"source:x", "external"});
  const LabelSet j = a.Join(b);
  EXPECT_EQ(j.integrity(), Integrity::kUntrusted);
  EXPECT_EQ(j.confidentiality(), Confidentiality::kSecret);
  EXPECT_THAT(j.tags(), ElementsAre("external", "source:x"));
}

TEST(LabelSetTest, ReachesRequiresEveryPart) {
  const LabelSet from = LabelSet::Parse({"untrusted", "external"}).value();
  EXPECT_TRUE(LabelSet::Parse({"poisoned-suspect", "external", "x"})->Reaches(from));
  EXPECT_FALSE(LabelSet::Parse({"poisoned-suspect"})->Reaches(from));     // tag missing
  EXPECT_FALSE(LabelSet::Parse({"trusted", "external"})->Reaches(from));  // integrity too good
  EXPECT_TRUE(LabelSet::Parse({"secret"})->Reaches(LabelSet::Parse({"private"}).value()));
  EXPECT_FALSE(LabelSet::Parse({"private"})->Reaches(LabelSet::Parse({"secret"}).value()));
}

TEST(LabelSetTest, ParseMapsLevelNamesAndTags) {
  Result<LabelSet> l = LabelSet::Parse({"untrusted", "external", "source:example.com", "private"});
  ASSERT_THAT(l, IsOk());
  EXPECT_EQ(l->integrity(), Integrity::kUntrusted);
  EXPECT_EQ(l->confidentiality(), Confidentiality::kPrivate);
  EXPECT_THAT(l->tags(), ElementsAre("external", "source:example.com"));
}

TEST(LabelSetTest, ParseJoinsRepeatedLevelsAndDeduplicatesTags) {
  Result<LabelSet> l = LabelSet::Parse({"secret", "public", "untrusted", "trusted", "b", "a", "b"});
  ASSERT_THAT(l, IsOk());
  EXPECT_EQ(l->integrity(), Integrity::kUntrusted);
  EXPECT_EQ(l->confidentiality(), Confidentiality::kSecret);
  EXPECT_THAT(l->tags(), ElementsAre("a", "b"));
}

TEST(LabelSetTest, ParseEmptyIsBottom) { EXPECT_EQ(LabelSet::Parse({}).value(), LabelSet()); }

TEST(LabelSetTest, InvalidTagIsInvalidArgument) {
  for (const char* bad : {"", "Untrusted", "has space", "semi;colon", "caf\xc3\xa9"}) {
    EXPECT_THAT(LabelSet::Parse({bad}), StatusIs(Reason::kInvalidArgument)) << bad;
  }
  EXPECT_THAT(LabelSet::Parse({std::string(129, 'a')}), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(LabelSet::Parse({std::string(128, 'a')}), IsOk());
  EXPECT_THAT(LabelSet::Parse({"a-b_c.d/e:f0"}), IsOk());
}

TEST(LabelSetTest, InvalidTagErrorPointsAtTheElement) {
  Result<LabelSet> l = LabelSet::Parse({"external", "BAD"});
  ASSERT_THAT(l, StatusIs(Reason::kInvalidArgument));
  EXPECT_EQ(l.status().at(), "/1");
}

TEST(LabelSetTest, FromJsonRequiresArrayOfStrings) {
  EXPECT_THAT(LabelSet::FromJson(Json::parse(R"(["untrusted","external"])")), IsOk());
  EXPECT_THAT(LabelSet::FromJson(Json::parse(R"("untrusted")")),
              StatusIs(Reason::kSchemaViolation));
  Result<LabelSet> l = LabelSet::FromJson(Json::parse(R"(["untrusted",3])"));
  ASSERT_THAT(l, StatusIs(Reason::kSchemaViolation));
  EXPECT_EQ(l.status().at(), "/1");
  EXPECT_THAT(LabelSet::FromJson(Json::parse(R"(["x y"])")), StatusIs(Reason::kInvalidArgument));
}

TEST(LabelSetTest, NamesListBottomPartsExplicitly) {
  EXPECT_THAT(LabelSet().Names(), ElementsAre("trusted", "public"));
  EXPECT_EQ(LabelSet().ToString(), "trusted,public");
  const LabelSet l(Integrity::kUntrusted, Confidentiality::kPrivate, {"external"});
  EXPECT_EQ(l.ToString(), "untrusted,private,external");
  EXPECT_EQ(l.ToJson(), Json::parse(R"(["untrusted","private","external"])"));
}

TEST(LabelSetTest, JsonRoundTrips) {
  for (const LabelSet& x : Universe()) {
    Result<LabelSet> back = LabelSet::FromJson(x.ToJson());
    ASSERT_THAT(back, IsOk());
    EXPECT_EQ(*back, x);
  }
}

TEST(LabelSetTest, AddTagKeepsTagsSortedAndUnique) {
  LabelSet l;
  l.AddTag("c");
  l.AddTag("a");
  l.AddTag("c");
  l.AddTag("b");
  EXPECT_THAT(l.tags(), ElementsAre("a", "b", "c"));
  EXPECT_TRUE(l.HasTag("b"));
  EXPECT_FALSE(l.HasTag("d"));
}

TEST(LabelSetTest, AddTagNormalizesUncontrolledInput) {
  LabelSet l;
  l.AddTag("source:API.Example.COM");
  l.AddTag("has space");
  l.AddTag("");
  l.AddTag(std::string(200, 'x'));
  EXPECT_TRUE(l.HasTag("source:api.example.com"));
  EXPECT_TRUE(l.HasTag("has_space"));
  EXPECT_TRUE(l.HasTag("_"));
  EXPECT_TRUE(l.HasTag(std::string(128, 'x')));
  for (const std::string& t : l.tags())
    EXPECT_THAT(LabelSet::Parse({t}), IsOk()) << t;
}

TEST(LabelSetTest, AddTagWithALevelNameRaisesThatLevel) {
  LabelSet l;
  l.AddTag("secret");
  l.AddTag("untrusted");
  EXPECT_EQ(l.confidentiality(), Confidentiality::kSecret);
  EXPECT_EQ(l.integrity(), Integrity::kUntrusted);
  EXPECT_TRUE(l.tags().empty());
  l.AddTag("trusted");  // never lowers
  EXPECT_EQ(l.integrity(), Integrity::kUntrusted);
}

TEST(LabelSetTest, UntrustedIsUntrustedPublic) {
  EXPECT_EQ(LabelSet::Untrusted(), LabelSet::Parse({"untrusted"}).value());
}

TEST(LabelSetTest, LevelNames) {
  EXPECT_EQ(IntegrityName(Integrity::kPoisonedSuspect), "poisoned-suspect");
  EXPECT_EQ(ConfidentialityName(Confidentiality::kPrivate), "private");
}

}  // namespace
}  // namespace custos::labels
