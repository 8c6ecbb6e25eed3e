// file.read / file.write / file.patch through the whole kernel: the policy decides on the
// canonical path, so `..`, symlinks and /proc tricks are judged by where they really lead.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "testing/kernel_fixture.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

namespace fs = std::filesystem;
using ::custos::testing::IsAllowed;
using ::custos::testing::IsDenied;
using ::custos::testing::KernelHarness;
using ::custos::testing::ReadFileIfExists;
using ::custos::testing::WriteFileOrDie;
using ::testing::ElementsAre;

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFileOrDie(h_.ws() / "notes.md", "hello notes\n");
    WriteFileOrDie(h_.root() / "outside" / "secret.txt", "outside the root\n");
    WriteFileOrDie(h_.ws() / "private" / "diary.txt", "dear diary\n");
    WriteFileOrDie(h_.out() / "draft.txt", "line one\nline two\nline three\n");
    ASSERT_TRUE(h_.Open(h_.Spec()));
  }

  KernelHarness h_;
};

using FileReadTest = FileTest;

TEST_F(FileReadTest, AllowedFileIsReadAndLabeledTrustedPrivateFromFile) {
  SyscallResult r = h_.Worker("file.read", (h_.ws() / "notes.md").string());
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.decision.rule, "fs.read");
  EXPECT_EQ(r.frame["text"], "hello notes\n");
  EXPECT_EQ(r.frame["path"], (h_.ws() / "notes.md").string());
  ASSERT_TRUE(r.handle.has_value());
  EXPECT_EQ(r.handle->kind, "file");
  EXPECT_EQ(r.handle->labels.integrity(), labels::Integrity::kTrusted);
  EXPECT_EQ(r.handle->labels.confidentiality(), labels::Confidentiality::kPrivate);
  EXPECT_TRUE(r.handle->labels.HasTag("source:file"));
  EXPECT_GT(r.receipt.outcome_seq, r.receipt.decision_seq);
}

TEST_F(FileReadTest, DotDotEscapingTheRootIsDeniedOnTheCanonicalPath) {
  const std::string sneaky = (h_.ws() / ".." / "outside" / "secret.txt").string();
  SyscallResult r = h_.Worker("file.read", sneaky);
  EXPECT_THAT(r, IsDenied(Reason::kPathNotAllowed, "policy"));
  EXPECT_EQ(r.decision.rule, "fs.read");
  // The policy saw the real path, and so does the log.
  std::vector<audit::LogEntry> entries = h_.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].target, (h_.root() / "outside" / "secret.txt").string());
  EXPECT_EQ(entries[0].verdict, "deny");
}

TEST_F(FileReadTest, SymlinkEscapingTheRootIsDenied) {
  fs::create_symlink(h_.root() / "outside" / "secret.txt", h_.ws() / "link.txt");
  SyscallResult r = h_.Worker("file.read", (h_.ws() / "link.txt").string());
  EXPECT_THAT(r, IsDenied(Reason::kPathNotAllowed, "policy"));
  EXPECT_FALSE(r.handle.has_value());
  EXPECT_TRUE(r.frame.is_null());
}

TEST_F(FileReadTest, SymlinkToADeniedDirectoryHitsTheDenyList) {
  fs::create_symlink(h_.ws() / "private", h_.ws() / "innocent");
  SyscallResult r = h_.Worker("file.read", (h_.ws() / "innocent" / "diary.txt").string());
  EXPECT_THAT(r, IsDenied(Reason::kDeniedByRule, "policy"));
  EXPECT_EQ(r.decision.rule, "fs.deny");
}

TEST_F(FileReadTest, ProcSelfRootEscapeIsDenied) {
  const std::string via_proc = "/proc/self/root" + (h_.ws() / "notes.md").string();
  SyscallResult r = h_.Worker("file.read", via_proc);
  EXPECT_THAT(r, IsDenied(Reason::kPathEscape, "resolve"));
  EXPECT_EQ(r.decision.at, "/target");
}

TEST_F(FileReadTest, MissingFileIsNotFoundAtResolve) {
  SyscallResult r = h_.Worker("file.read", (h_.ws() / "nope.txt").string());
  EXPECT_THAT(r, IsDenied(Reason::kNotFound, "resolve"));
  EXPECT_EQ(r.decision.at, "/target");
}

TEST_F(FileReadTest, RelativePathIsInvalidArgument) {
  SyscallResult r = h_.Worker("file.read", "ws/notes.md");
  EXPECT_THAT(r, IsDenied(Reason::kInvalidArgument, "resolve"));
}

TEST_F(FileReadTest, MaxBytesOfTheWrongTypeIsASchemaViolation) {
  SyscallResult r = h_.Worker("file.read", (h_.ws() / "notes.md").string(), {{"max_bytes", "10"}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/max_bytes");
}

TEST_F(FileReadTest, FileLargerThanMaxBytesIsRefusedAtTheEffect) {
  SyscallResult r = h_.Worker("file.read", (h_.ws() / "notes.md").string(), {{"max_bytes", 5}});
  EXPECT_THAT(r, IsDenied(Reason::kPayloadTooLarge, "effect"));
  EXPECT_FALSE(r.handle.has_value());
  EXPECT_TRUE(r.frame.is_null());
}

TEST_F(FileReadTest, AgentWithoutTheCapabilityIsDenied) {
  SyscallResult r = h_.Exec("lead", "file.read", (h_.ws() / "notes.md").string());
  EXPECT_THAT(r, IsDenied(Reason::kCapabilityMissing, "capability"));
  EXPECT_FALSE(r.handle.has_value());
}

using FileWriteTest = FileTest;

TEST_F(FileWriteTest, AgentWithoutTheCapabilityIsDenied) {
  SyscallResult r =
      h_.Exec("reader", "file.write", (h_.out() / "x.txt").string(), {{"content", "x"}});
  EXPECT_THAT(r, IsDenied(Reason::kCapabilityMissing, "capability"));
  EXPECT_FALSE(fs::exists(h_.out() / "x.txt"));
}

TEST_F(FileWriteTest, WriteInsideTheWriteRootCreatesTheFile) {
  SyscallResult r = h_.Worker("file.write", (h_.out() / "summary.md").string(),
                              {{"content", "summary\n"}, {"mode", "create"}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["written"], 8);
  EXPECT_EQ(ReadFileIfExists(h_.out() / "summary.md"), "summary\n");
}

TEST_F(FileWriteTest, AppendModeAppends) {
  ASSERT_THAT(h_.Worker("file.write", (h_.out() / "draft.txt").string(),
                        {{"content", "line four\n"}, {"mode", "append"}}),
              IsAllowed());
  EXPECT_EQ(ReadFileIfExists(h_.out() / "draft.txt"),
            "line one\nline two\nline three\nline four\n");
}

TEST_F(FileWriteTest, WriteOutsideTheWriteRootIsDeniedAndNothingIsWritten) {
  SyscallResult r =
      h_.Worker("file.write", (h_.ws() / "notes.md").string(), {{"content", "overwritten"}});
  EXPECT_THAT(r, IsDenied(Reason::kPathNotAllowed, "policy"));
  EXPECT_EQ(r.decision.rule, "fs.write");
  EXPECT_EQ(ReadFileIfExists(h_.ws() / "notes.md"), "hello notes\n");
}

TEST_F(FileWriteTest, DotDotOutOfTheWriteRootIsDenied) {
  SyscallResult r = h_.Worker(
      "file.write", (h_.out() / ".." / ".." / "outside" / "new.txt").string(), {{"content", "x"}});
  EXPECT_THAT(r, IsDenied(Reason::kPathNotAllowed, "policy"));
  EXPECT_FALSE(fs::exists(h_.root() / "outside" / "new.txt"));
}

TEST_F(FileWriteTest, SymlinkedFileOutsideTheRootIsNotOverwritten) {
  fs::create_symlink(h_.root() / "outside" / "secret.txt", h_.out() / "link.txt");
  SyscallResult r =
      h_.Worker("file.write", (h_.out() / "link.txt").string(), {{"content", "pwned"}});
  EXPECT_THAT(r, IsDenied(Reason::kPathNotAllowed, "policy"));
  EXPECT_EQ(ReadFileIfExists(h_.root() / "outside" / "secret.txt"), "outside the root\n");
}

TEST_F(FileWriteTest, DanglingSymlinkTargetIsAPathEscape) {
  fs::create_symlink(h_.root() / "outside" / "does-not-exist.txt", h_.out() / "dangling.txt");
  SyscallResult r =
      h_.Worker("file.write", (h_.out() / "dangling.txt").string(), {{"content", "x"}});
  EXPECT_THAT(r, IsDenied(Reason::kPathEscape, "resolve"));
  EXPECT_FALSE(fs::exists(h_.root() / "outside" / "does-not-exist.txt"));
}

TEST_F(FileWriteTest, UnknownModeIsASchemaViolation) {
  SyscallResult r = h_.Worker("file.write", (h_.out() / "a.txt").string(),
                              {{"content", "x"}, {"mode", "truncate"}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "resolve"));
  EXPECT_EQ(r.decision.at, "/args/mode");
  EXPECT_FALSE(fs::exists(h_.out() / "a.txt"));
}

TEST_F(FileWriteTest, ContentOfTheWrongTypeIsASchemaViolation) {
  SyscallResult r = h_.Worker("file.write", (h_.out() / "a.txt").string(), {{"content", 42}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/content");
}

TEST_F(FileWriteTest, CreateOntoAnExistingFileFailsAtTheEffect) {
  SyscallResult r = h_.Worker("file.write", (h_.out() / "draft.txt").string(),
                              {{"content", "x"}, {"mode", "create"}});
  EXPECT_THAT(r, IsDenied(Reason::kAlreadyExists, "effect"));
  EXPECT_EQ(ReadFileIfExists(h_.out() / "draft.txt"), "line one\nline two\nline three\n");
  // The allow was recorded, then the failed outcome pointing at it.
  std::vector<audit::LogEntry> entries = h_.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].type, "decision");
  EXPECT_EQ(entries[0].verdict, "allow");
  EXPECT_EQ(entries[1].type, "outcome");
  EXPECT_EQ(entries[1].verdict, "deny");
  EXPECT_EQ(entries[1].reason, "already_exists");
  EXPECT_EQ(entries[1].decision_seq, entries[0].seq);
}

TEST_F(FileWriteTest, ContentMayComeFromOneInputHandle) {
  SyscallResult read = h_.Worker("file.read", (h_.ws() / "notes.md").string());
  ASSERT_THAT(read, IsAllowed());
  SyscallResult r =
      h_.Worker("file.write", (h_.out() / "copy.md").string(), Json::object(), {read.handle->id});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(ReadFileIfExists(h_.out() / "copy.md"), "hello notes\n");
}

TEST_F(FileWriteTest, NeitherContentNorInputFailsAtTheEffect) {
  SyscallResult r = h_.Worker("file.write", (h_.out() / "empty.md").string());
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "effect"));
  EXPECT_FALSE(fs::exists(h_.out() / "empty.md"));
}

using FilePatchTest = FileTest;

TEST_F(FilePatchTest, EditsAreAppliedInPlace) {
  SyscallResult r = h_.Worker("file.patch", (h_.out() / "draft.txt").string(),
                              {{"edits", Json::array({{{"old", "line two"}, {"new", "line 2"}}})}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(ReadFileIfExists(h_.out() / "draft.txt"), "line one\nline 2\nline three\n");
}

TEST_F(FilePatchTest, UnifiedDiffIsApplied) {
  const std::string diff =
      "--- a/draft.txt\n+++ b/draft.txt\n@@ -1,3 +1,3 @@\n line one\n-line two\n+LINE TWO\n "
      "line three\n";
  SyscallResult r = h_.Worker("file.patch", (h_.out() / "draft.txt").string(), {{"diff", diff}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(ReadFileIfExists(h_.out() / "draft.txt"), "line one\nLINE TWO\nline three\n");
}

TEST_F(FilePatchTest, PatchOutsideTheWriteRootIsDenied) {
  SyscallResult r = h_.Worker("file.patch", (h_.ws() / "notes.md").string(),
                              {{"edits", Json::array({{{"old", "hello"}, {"new", "bye"}}})}});
  EXPECT_THAT(r, IsDenied(Reason::kPathNotAllowed, "policy"));
  EXPECT_EQ(ReadFileIfExists(h_.ws() / "notes.md"), "hello notes\n");
}

TEST_F(FilePatchTest, BothDiffAndEditsIsASchemaViolation) {
  SyscallResult r = h_.Worker("file.patch", (h_.out() / "draft.txt").string(),
                              {{"diff", "@@"}, {"edits", Json::array()}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "resolve"));
  EXPECT_EQ(r.decision.at, "/args");
}

TEST_F(FilePatchTest, MalformedEditIsASchemaViolationAndTheFileIsUnchanged) {
  SyscallResult r = h_.Worker("file.patch", (h_.out() / "draft.txt").string(),
                              {{"edits", Json::array({{{"old", "line one"}}})}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "effect"));
  EXPECT_EQ(r.decision.at, "/args/edits/0");
  EXPECT_EQ(ReadFileIfExists(h_.out() / "draft.txt"), "line one\nline two\nline three\n");
}

TEST_F(FilePatchTest, EditThatDoesNotMatchChangesNothing) {
  SyscallResult r = h_.Worker("file.patch", (h_.out() / "draft.txt").string(),
                              {{"edits", Json::array({{{"old", "line nine"}, {"new", "x"}}})}});
  EXPECT_THAT(r, IsDenied(Reason::kInvalidArgument, "effect"));
  EXPECT_EQ(ReadFileIfExists(h_.out() / "draft.txt"), "line one\nline two\nline three\n");
}

TEST_F(FilePatchTest, AgentWithoutTheCapabilityIsDenied) {
  SyscallResult r = h_.Exec("reader", "file.patch", (h_.out() / "draft.txt").string(),
                            {{"edits", Json::array({{{"old", "one"}, {"new", "1"}}})}});
  EXPECT_THAT(r, IsDenied(Reason::kCapabilityMissing, "capability"));
  EXPECT_EQ(ReadFileIfExists(h_.out() / "draft.txt"), "line one\nline two\nline three\n");
}

TEST_F(FilePatchTest, EveryStepIsRecordedInOrder) {
  SyscallResult r = h_.Worker("file.patch", (h_.out() / "draft.txt").string(),
                              {{"edits", Json::array({{{"old", "one"}, {"new", "1"}}})}});
  ASSERT_THAT(r, IsAllowed());
  std::vector<std::string> types;
  for (const audit::LogEntry& e : h_.EntriesFor(r.id))
    types.push_back(e.type + ":" + e.verdict);
  EXPECT_THAT(types, ElementsAre("decision:allow", "outcome:allow"));
}

}  // namespace
}  // namespace custos::kernel
