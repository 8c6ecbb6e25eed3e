#include "custos/effects/path.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::effects {
namespace {

namespace fs = std::filesystem;
using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::custos::testing::TempDir;

class CanonicalPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::canonical(tmp_.path()).string();
    fs::create_directories(root_ + "/a/b");
    std::ofstream(root_ + "/a/b/file.txt") << "x";
  }
  TempDir tmp_;
  std::string root_;
};

TEST_F(CanonicalPathTest, RelativePathIsInvalidArgument) {
  EXPECT_THAT(CanonicalPath("a/b", true), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(CanonicalPath("", false), StatusIs(Reason::kInvalidArgument));
}

TEST_F(CanonicalPathTest, NulByteIsInvalidArgument) {
  std::string p = root_ + "/a/b/file.txt";
  p.insert(p.size() - 4, 1, '\0');
  EXPECT_THAT(CanonicalPath(p, true), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(CanonicalPath(p, false), StatusIs(Reason::kInvalidArgument));
}

TEST_F(CanonicalPathTest, OverlongPathIsInvalidArgument) {
  std::string p = "/" + std::string(kMaxPathBytes, 'a');
  EXPECT_THAT(CanonicalPath(p, false), StatusIs(Reason::kInvalidArgument));
}

TEST_F(CanonicalPathTest, DotAndDotDotAreResolved) {
  auto r = CanonicalPath(root_ + "/a/./b/../b//file.txt", true);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, root_ + "/a/b/file.txt");
}

TEST_F(CanonicalPathTest, DotDotEscapesAreVisibleInTheResult) {
  // ".." cannot be hidden: the result is where the path really leads, for policy to judge.
  auto r = CanonicalPath(root_ + "/a/b/../../../../../../etc/hosts", true);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "/etc/hosts");
}

TEST_F(CanonicalPathTest, RootIsRoot) {
  auto r = CanonicalPath("/../..//.", true);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "/");
}

TEST_F(CanonicalPathTest, SymlinkEscapingTheRootRevealsItsTarget) {
  fs::create_directory_symlink("/etc", root_ + "/a/etc_link");
  auto r = CanonicalPath(root_ + "/a/etc_link/hosts", true);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "/etc/hosts");
}

TEST_F(CanonicalPathTest, RelativeSymlinkIsResolvedFromItsDirectory) {
  fs::create_symlink("b/file.txt", root_ + "/a/rel");
  auto r = CanonicalPath(root_ + "/a/rel", true);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, root_ + "/a/b/file.txt");
}

TEST_F(CanonicalPathTest, DotDotAfterSymlinkUsesTheRealParent) {
  fs::create_directory_symlink(root_ + "/a/b", root_ + "/blink");
  auto r = CanonicalPath(root_ + "/blink/../b/file.txt", true);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, root_ + "/a/b/file.txt");
}

TEST_F(CanonicalPathTest, MissingFileIsNotFound) {
  EXPECT_THAT(CanonicalPath(root_ + "/a/missing", true), StatusIs(Reason::kNotFound));
}

TEST_F(CanonicalPathTest, FileUsedAsDirectoryIsNotFound) {
  EXPECT_THAT(CanonicalPath(root_ + "/a/b/file.txt/x", true), StatusIs(Reason::kNotFound));
  EXPECT_THAT(CanonicalPath(root_ + "/a/b/file.txt/", true), StatusIs(Reason::kNotFound));
  EXPECT_THAT(CanonicalPath(root_ + "/a/b/file.txt/..", true), StatusIs(Reason::kNotFound));
}

TEST_F(CanonicalPathTest, SymlinkLoopIsInvalidArgument) {
  fs::create_symlink(root_ + "/loop2", root_ + "/loop1");
  fs::create_symlink(root_ + "/loop1", root_ + "/loop2");
  EXPECT_THAT(CanonicalPath(root_ + "/loop1", true), StatusIs(Reason::kInvalidArgument));
}

TEST_F(CanonicalPathTest, ProcSelfRootTrickIsPathEscape) {
  EXPECT_THAT(CanonicalPath("/proc/self/root/etc/hosts", true), StatusIs(Reason::kPathEscape));
  EXPECT_THAT(CanonicalPath("/proc/1/root/etc/hosts", true), StatusIs(Reason::kPathEscape));
  EXPECT_THAT(CanonicalPath("/proc/self/cwd", true), StatusIs(Reason::kPathEscape));
  EXPECT_THAT(CanonicalPath("/proc/self/environ", true), StatusIs(Reason::kPathEscape));
  EXPECT_THAT(CanonicalPath("/proc/self/root/tmp/x", false), StatusIs(Reason::kPathEscape));
}

TEST_F(CanonicalPathTest, DevFdAndStdioLinksArePathEscape) {
  EXPECT_THAT(CanonicalPath("/dev/fd/0", true), StatusIs(Reason::kPathEscape));
  EXPECT_THAT(CanonicalPath("/dev/stdin", true), StatusIs(Reason::kPathEscape));
}

TEST_F(CanonicalPathTest, SymlinkIntoProcIsPathEscape) {
  fs::create_directory_symlink("/proc/self/root", root_ + "/sneaky");
  EXPECT_THAT(CanonicalPath(root_ + "/sneaky/etc/hosts", true), StatusIs(Reason::kPathEscape));
  EXPECT_THAT(CanonicalPath(root_ + "/sneaky/tmp/new", false), StatusIs(Reason::kPathEscape));
}

TEST_F(CanonicalPathTest, ProcDotDotEscapeIsStillRefused) {
  EXPECT_THAT(CanonicalPath(root_ + "/../../proc/self/environ", true),
              StatusIs(Reason::kPathEscape));
}

TEST_F(CanonicalPathTest, WriteTargetMayBeNew) {
  auto r = CanonicalPath(root_ + "/a/./b/../b/new.txt", false);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, root_ + "/a/b/new.txt");
}

TEST_F(CanonicalPathTest, WriteTargetNeedsAnExistingParent) {
  EXPECT_THAT(CanonicalPath(root_ + "/nope/new.txt", false), StatusIs(Reason::kNotFound));
  EXPECT_THAT(CanonicalPath(root_ + "/a/b/file.txt/new.txt", false), StatusIs(Reason::kNotFound));
}

TEST_F(CanonicalPathTest, WriteTargetMustEndInAName) {
  EXPECT_THAT(CanonicalPath(root_ + "/a/..", false), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(CanonicalPath(root_ + "/a/.", false), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(CanonicalPath(root_ + "/a/", false), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(CanonicalPath("/", false), StatusIs(Reason::kInvalidArgument));
}

TEST_F(CanonicalPathTest, WriteTargetThroughParentSymlinkRevealsTarget) {
  fs::create_directory_symlink(root_ + "/a/b", root_ + "/dirlink");
  auto r = CanonicalPath(root_ + "/dirlink/new.txt", false);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, root_ + "/a/b/new.txt");
}

TEST_F(CanonicalPathTest, WriteTargetThatIsASymlinkRevealsTarget) {
  fs::create_symlink(root_ + "/a/b/file.txt", root_ + "/filelink");
  auto r = CanonicalPath(root_ + "/filelink", false);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, root_ + "/a/b/file.txt");
}

TEST_F(CanonicalPathTest, DanglingSymlinkWriteTargetIsPathEscape) {
  fs::create_symlink("/etc/custos-should-not-exist", root_ + "/dangling");
  EXPECT_THAT(CanonicalPath(root_ + "/dangling", false), StatusIs(Reason::kPathEscape));
}

}  // namespace
}  // namespace custos::effects
