// memory.alloc/read/write/delete/query/batch: a versioned heap per run whose labels only rise.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/kernel_fixture.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

using ::custos::testing::CallJson;
using ::custos::testing::IsAllowed;
using ::custos::testing::IsDenied;
using ::custos::testing::KernelHarness;

class MemoryTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h_.Open(h_.Spec())); }

  // Allocates `id` of type `type` with `value`, declaring `labels`.
  SyscallResult Alloc(const std::string& id, const Json& value,
                      std::vector<std::string> declared = {"trusted"},
                      const std::string& type = "note") {
    Json j = CallJson("worker", "memory.alloc", type, {{"id", id}, {"value", value}});
    j["labels"] = declared;
    return h_.Exec(j);
  }
  SyscallResult Write(const std::string& id, Json args, std::vector<std::string> declared = {}) {
    Json j = CallJson("worker", "memory.write", id, std::move(args));
    if (!declared.empty())
      j["labels"] = declared;
    return h_.Exec(j);
  }

  KernelHarness h_;
};

using MemoryAllocTest = MemoryTest;

TEST_F(MemoryAllocTest, AllocCreatesVersionOne) {
  SyscallResult r = Alloc("plan", {{"step", 1}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["id"], "plan");
  EXPECT_EQ(r.frame["version"], 1);
}

TEST_F(MemoryAllocTest, AllocOfAnExistingIdIsAVersionConflict) {
  ASSERT_THAT(Alloc("plan", 1), IsAllowed());
  EXPECT_THAT(Alloc("plan", 2), IsDenied(Reason::kVersionConflict, "effect"));
}

TEST_F(MemoryAllocTest, MissingValueIsASchemaViolation) {
  SyscallResult r = h_.Worker("memory.alloc", "note", {{"id", "x"}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/value");
}

TEST_F(MemoryAllocTest, BadTypeNameIsInvalid) {
  SyscallResult r = h_.Worker("memory.alloc", "no spaces", {{"value", 1}});
  EXPECT_THAT(r, IsDenied(Reason::kInvalidArgument, "resolve"));
}

TEST_F(MemoryAllocTest, AgentWithoutTheCapabilityIsDenied) {
  SyscallResult r = h_.Exec("reader", "memory.alloc", "note", {{"value", 1}});
  EXPECT_THAT(r, IsDenied(Reason::kCapabilityMissing, "capability"));
}

using MemoryReadTest = MemoryTest;

TEST_F(MemoryReadTest, ReadReturnsTheValueAndAHandleWithTheObjectsLabels) {
  ASSERT_THAT(Alloc("plan", {{"step", 1}}, {"untrusted", "private"}), IsAllowed());
  SyscallResult r = h_.Worker("memory.read", "plan");
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["value"]["step"], 1);
  EXPECT_EQ(r.frame["version"], 1);
  ASSERT_TRUE(r.handle.has_value());
  EXPECT_EQ(r.handle->labels.integrity(), labels::Integrity::kUntrusted);
  EXPECT_EQ(r.handle->labels.confidentiality(), labels::Confidentiality::kPrivate);
}

TEST_F(MemoryReadTest, ObjectsOfAnotherRunAreInvisible) {
  ASSERT_THAT(Alloc("plan", 1), IsAllowed());
  SyscallResult r = h_.Exec("worker", "memory.read", "plan", Json::object(), {}, "run-2");
  EXPECT_THAT(r, IsDenied(Reason::kNotFound, "effect"));
}

TEST_F(MemoryReadTest, ReaderAgentMayReadButNotWrite) {
  ASSERT_THAT(Alloc("plan", 1), IsAllowed());
  EXPECT_THAT(h_.Exec("reader", "memory.read", "plan"), IsAllowed());
  EXPECT_THAT(h_.Exec("reader", "memory.write", "plan", {{"value", 2}}),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

TEST_F(MemoryReadTest, UnknownArgumentIsAnUnknownField) {
  SyscallResult r = h_.Worker("memory.read", "plan", {{"version", 1}});
  EXPECT_THAT(r, IsDenied(Reason::kUnknownField, "schema"));
  EXPECT_EQ(r.decision.at, "/args/version");
}

using MemoryWriteTest = MemoryTest;

TEST_F(MemoryWriteTest, CompareAndSwapSucceedsAtTheExpectedVersion) {
  ASSERT_THAT(Alloc("plan", 1), IsAllowed());
  SyscallResult r = Write("plan", {{"value", 2}, {"expected_version", 1}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["version"], 2);
}

TEST_F(MemoryWriteTest, StaleExpectedVersionIsAVersionConflict) {
  ASSERT_THAT(Alloc("plan", 1), IsAllowed());
  ASSERT_THAT(Write("plan", {{"value", 2}, {"expected_version", 1}}), IsAllowed());
  SyscallResult r = Write("plan", {{"value", 3}, {"expected_version", 1}});
  EXPECT_THAT(r, IsDenied(Reason::kVersionConflict, "effect"));
  SyscallResult now = h_.Worker("memory.read", "plan");
  EXPECT_EQ(now.frame["value"], 2);
  EXPECT_EQ(now.frame["version"], 2);
}

TEST_F(MemoryWriteTest, JsonPatchIsApplied) {
  ASSERT_THAT(Alloc("plan", {{"steps", Json::array({"a"})}, {"done", false}}), IsAllowed());
  SyscallResult r = Write(
      "plan", {{"patch", Json::array({{{"op", "add"}, {"path", "/steps/-"}, {"value", "b"}},
                                      {{"op", "replace"}, {"path", "/done"}, {"value", true}}})}});
  ASSERT_THAT(r, IsAllowed());
  SyscallResult now = h_.Worker("memory.read", "plan");
  EXPECT_EQ(now.frame["value"], Json({{"steps", {"a", "b"}}, {"done", true}}));
}

TEST_F(MemoryWriteTest, PatchThatDoesNotApplyChangesNothing) {
  ASSERT_THAT(Alloc("plan", {{"done", false}}), IsAllowed());
  SyscallResult r =
      Write("plan", {{"patch", Json::array({{{"op", "remove"}, {"path", "/missing"}}})}});
  EXPECT_THAT(r, IsDenied(Reason::kInvalidArgument, "effect"));
  EXPECT_EQ(r.decision.at, "/args/patch");
  EXPECT_EQ(h_.Worker("memory.read", "plan").frame["version"], 1);
}

TEST_F(MemoryWriteTest, ValueAndPatchTogetherIsASchemaViolation) {
  ASSERT_THAT(Alloc("plan", 1), IsAllowed());
  SyscallResult r = Write("plan", {{"value", 2}, {"patch", Json::array()}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "effect"));
}

TEST_F(MemoryWriteTest, LabelsOnlyRiseOnWrite) {
  ASSERT_THAT(Alloc("plan", 1, {"trusted", "public"}), IsAllowed());
  ASSERT_THAT(Write("plan", {{"value", 2}}, {"untrusted", "private"}), IsAllowed());
  // A later write declared trusted/public cannot wash the object clean.
  ASSERT_THAT(Write("plan", {{"value", 3}}, {"trusted", "public"}), IsAllowed());
  SyscallResult r = h_.Worker("memory.read", "plan");
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["value"], 3);
  EXPECT_EQ(r.handle->labels.integrity(), labels::Integrity::kUntrusted);
  EXPECT_EQ(r.handle->labels.confidentiality(), labels::Confidentiality::kPrivate);
}

TEST_F(MemoryWriteTest, UndeclaredWriteIsUntrusted) {
  ASSERT_THAT(Alloc("plan", 1, {"trusted"}), IsAllowed());
  ASSERT_THAT(Write("plan", {{"value", 2}}), IsAllowed());
  EXPECT_EQ(h_.Worker("memory.read", "plan").handle->labels.integrity(),
            labels::Integrity::kUntrusted);
}

TEST_F(MemoryWriteTest, WriteToAMissingObjectIsNotFound) {
  EXPECT_THAT(Write("ghost", {{"value", 1}}), IsDenied(Reason::kNotFound, "effect"));
}

TEST_F(MemoryWriteTest, ExpectedVersionOfTheWrongTypeIsASchemaViolation) {
  SyscallResult r = Write("plan", {{"value", 1}, {"expected_version", "1"}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/expected_version");
}

using MemoryDeleteTest = MemoryTest;

TEST_F(MemoryDeleteTest, DeleteRemovesTheObject) {
  ASSERT_THAT(Alloc("plan", 1), IsAllowed());
  SyscallResult r = h_.Worker("memory.delete", "plan", {{"expected_version", 1}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["deleted"], true);
  EXPECT_THAT(h_.Worker("memory.read", "plan"), IsDenied(Reason::kNotFound, "effect"));
}

TEST_F(MemoryDeleteTest, DeleteAtAStaleVersionIsAVersionConflict) {
  ASSERT_THAT(Alloc("plan", 1), IsAllowed());
  ASSERT_THAT(Write("plan", {{"value", 2}}), IsAllowed());
  EXPECT_THAT(h_.Worker("memory.delete", "plan", {{"expected_version", 1}}),
              IsDenied(Reason::kVersionConflict, "effect"));
  EXPECT_THAT(h_.Worker("memory.read", "plan"), IsAllowed());
}

TEST_F(MemoryDeleteTest, DeleteOfAMissingObjectIsNotFound) {
  EXPECT_THAT(h_.Worker("memory.delete", "ghost"), IsDenied(Reason::kNotFound, "effect"));
}

TEST_F(MemoryDeleteTest, AgentWithoutTheCapabilityIsDenied) {
  EXPECT_THAT(h_.Exec("reader", "memory.delete", "plan"),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

using MemoryQueryTest = MemoryTest;

TEST_F(MemoryQueryTest, QueryReturnsObjectsOfTheTypeAndJoinsTheirLabels) {
  ASSERT_THAT(Alloc("a", 1, {"trusted"}, "task"), IsAllowed());
  ASSERT_THAT(Alloc("b", 2, {"untrusted", "private"}, "task"), IsAllowed());
  ASSERT_THAT(Alloc("c", 3, {"trusted"}, "note"), IsAllowed());
  SyscallResult r = h_.Worker("memory.query", "task");
  ASSERT_THAT(r, IsAllowed());
  ASSERT_EQ(r.frame["objects"].size(), 2u);
  EXPECT_EQ(r.frame["objects"][0]["id"], "a");
  EXPECT_EQ(r.frame["objects"][1]["id"], "b");
  EXPECT_EQ(r.handle->labels.integrity(), labels::Integrity::kUntrusted);
  EXPECT_EQ(r.handle->labels.confidentiality(), labels::Confidentiality::kPrivate);
}

TEST_F(MemoryQueryTest, LimitBoundsTheResult) {
  for (const char* id : {"a", "b", "c"})
    ASSERT_THAT(Alloc(id, 1, {"trusted"}, "task"), IsAllowed());
  SyscallResult r = h_.Worker("memory.query", "task", {{"limit", 2}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["objects"].size(), 2u);
}

TEST_F(MemoryQueryTest, LimitOfTheWrongTypeIsASchemaViolation) {
  SyscallResult r = h_.Worker("memory.query", "task", {{"limit", 2.5}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/limit");
}

TEST_F(MemoryQueryTest, AgentWithoutTheCapabilityIsDenied) {
  EXPECT_THAT(h_.Exec("reader", "memory.query", "task"),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

using MemoryBatchTest = MemoryTest;

TEST_F(MemoryBatchTest, AllOperationsApplyTogether) {
  ASSERT_THAT(Alloc("old", 1), IsAllowed());
  SyscallResult r = h_.Worker(
      "memory.batch", "",
      {{"ops", Json::array({{{"op", "put"}, {"id", "x"}, {"type", "task"}, {"value", 1}},
                            {{"op", "put"}, {"id", "y"}, {"type", "task"}, {"value", 2}},
                            {{"op", "delete"}, {"id", "old"}, {"expected_version", 1}}})}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["objects"].size(), 3u);
  EXPECT_THAT(h_.Worker("memory.read", "x"), IsAllowed());
  EXPECT_THAT(h_.Worker("memory.read", "y"), IsAllowed());
  EXPECT_THAT(h_.Worker("memory.read", "old"), IsDenied(Reason::kNotFound, "effect"));
}

TEST_F(MemoryBatchTest, OneConflictingOpWritesNothing) {
  ASSERT_THAT(Alloc("old", 1), IsAllowed());
  SyscallResult r =
      h_.Worker("memory.batch", "",
                {{"ops", Json::array({{{"op", "put"}, {"id", "x"}, {"type", "task"}, {"value", 1}},
                                      {{"op", "put"},
                                       {"id", "old"},
                                       {"type", "note"},
                                       {"value", 9},
                                       {"expected_version", 7}}})}});
  EXPECT_THAT(r, IsDenied(Reason::kVersionConflict, "effect"));
  EXPECT_THAT(h_.Worker("memory.read", "x"), IsDenied(Reason::kNotFound, "effect"));
  SyscallResult old = h_.Worker("memory.read", "old");
  EXPECT_EQ(old.frame["value"], 1);
  EXPECT_EQ(old.frame["version"], 1);
}

TEST_F(MemoryBatchTest, OneMalformedOpWritesNothing) {
  SyscallResult r =
      h_.Worker("memory.batch", "",
                {{"ops", Json::array({{{"op", "put"}, {"id", "x"}, {"type", "task"}, {"value", 1}},
                                      {{"op", "upsert"}, {"id", "y"}}})}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "effect"));
  EXPECT_EQ(r.decision.at, "/args/ops/1/op");
  EXPECT_THAT(h_.Worker("memory.read", "x"), IsDenied(Reason::kNotFound, "effect"));
}

TEST_F(MemoryBatchTest, UnknownOpFieldIsAnUnknownField) {
  SyscallResult r = h_.Worker(
      "memory.batch", "",
      {{"ops",
        Json::array({{{"op", "put"}, {"id", "x"}, {"type", "t"}, {"value", 1}, {"ttl", 5}}})}});
  EXPECT_THAT(r, IsDenied(Reason::kUnknownField, "effect"));
  EXPECT_EQ(r.decision.at, "/args/ops/0/ttl");
}

TEST_F(MemoryBatchTest, PutIntoAnExistingObjectKeepsItsHigherLabels) {
  ASSERT_THAT(Alloc("x", 1, {"untrusted", "private"}), IsAllowed());
  Json j = CallJson(
      "worker", "memory.batch", "",
      {{"ops", Json::array({{{"op", "put"}, {"id", "x"}, {"type", "note"}, {"value", 2}}})}});
  j["labels"] = {"trusted", "public"};
  ASSERT_THAT(h_.Exec(j), IsAllowed());
  SyscallResult r = h_.Worker("memory.read", "x");
  EXPECT_EQ(r.frame["value"], 2);
  EXPECT_EQ(r.handle->labels.integrity(), labels::Integrity::kUntrusted);
  EXPECT_EQ(r.handle->labels.confidentiality(), labels::Confidentiality::kPrivate);
}

TEST_F(MemoryBatchTest, BatchWithATargetIsASchemaViolation) {
  SyscallResult r = h_.Worker("memory.batch", "x", {{"ops", Json::array()}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/target");
}

TEST_F(MemoryBatchTest, AgentWithoutTheCapabilityIsDenied) {
  EXPECT_THAT(h_.Exec("reader", "memory.batch", "", {{"ops", Json::array()}}),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

}  // namespace
}  // namespace custos::kernel
