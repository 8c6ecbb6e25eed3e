#include "custos/effects/file_io.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "custos/effects/path.h"
#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::effects {
namespace {

namespace fs = std::filesystem;
using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::custos::testing::TempDir;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FileIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::canonical(tmp_.path()).string();
    fs::create_directories(root_ + "/work");
    fs::create_directories(root_ + "/elsewhere");
    std::ofstream(root_ + "/work/notes.txt") << "hello";
    std::ofstream(root_ + "/elsewhere/notes.txt") << "private";
  }
  std::vector<std::string> Listing(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) {
      names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  TempDir tmp_;
  std::string root_;
};

TEST_F(FileIoTest, ReadsARegularFile) {
  auto canonical = CanonicalPath(root_ + "/work/notes.txt", true);
  ASSERT_THAT(canonical, IsOk());
  auto r = ReadFileAt(*canonical, 1024);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->contents, "hello");
  EXPECT_NE(r->inode, 0u);
}

TEST_F(FileIoTest, ReadsAnEmptyFile) {
  std::ofstream(root_ + "/work/empty").flush();
  auto r = ReadFileAt(root_ + "/work/empty", 0);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->contents, "");
}

TEST_F(FileIoTest, FileOverTheCapIsPayloadTooLarge) {
  EXPECT_THAT(ReadFileAt(root_ + "/work/notes.txt", 4), StatusIs(Reason::kPayloadTooLarge));
  EXPECT_THAT(ReadFileAt(root_ + "/work/notes.txt", 5), IsOk());
}

TEST_F(FileIoTest, MissingFileIsNotFound) {
  EXPECT_THAT(ReadFileAt(root_ + "/work/missing", 10), StatusIs(Reason::kNotFound));
}

TEST_F(FileIoTest, NonCanonicalNameIsInvalidArgument) {
  EXPECT_THAT(ReadFileAt(root_ + "/work/../work/notes.txt", 10),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ReadFileAt("work/notes.txt", 10), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(WriteFileAt(root_ + "/work//x", "a", WriteMode::kOverwrite),
              StatusIs(Reason::kInvalidArgument));
}

TEST_F(FileIoTest, DirectoryAndFifoAreNotRegularFiles) {
  EXPECT_THAT(ReadFileAt(root_ + "/work", 10), StatusIs(Reason::kInvalidArgument));
  ASSERT_EQ(::mkfifo((root_ + "/work/fifo").c_str(), 0600), 0);
  // Must not block waiting for a writer.
  EXPECT_THAT(ReadFileAt(root_ + "/work/fifo", 10), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(WriteFileAt(root_ + "/work/fifo", "x", WriteMode::kAppend),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(WriteFileAt(root_ + "/work/fifo", "x", WriteMode::kOverwrite),
              StatusIs(Reason::kInvalidArgument));
}

TEST_F(FileIoTest, FinalComponentSwappedForSymlinkIsPathEscape) {
  auto canonical = CanonicalPath(root_ + "/work/notes.txt", true);
  ASSERT_THAT(canonical, IsOk());
  // Between the policy check and the read, an attacker replaces the file with a link.
  fs::remove(root_ + "/work/notes.txt");
  fs::create_symlink(root_ + "/elsewhere/notes.txt", root_ + "/work/notes.txt");
  EXPECT_THAT(ReadFileAt(*canonical, 1024), StatusIs(Reason::kPathEscape));
  EXPECT_THAT(WriteFileAt(*canonical, "x", WriteMode::kAppend), StatusIs(Reason::kPathEscape));
  EXPECT_THAT(WriteFileAt(*canonical, "x", WriteMode::kOverwrite), StatusIs(Reason::kPathEscape));
  EXPECT_EQ(Slurp(root_ + "/elsewhere/notes.txt"), "private");
}

TEST_F(FileIoTest, DirectorySwappedForSymlinkAfterCanonicalisationIsPathEscape) {
  auto canonical = CanonicalPath(root_ + "/work/notes.txt", true);
  ASSERT_THAT(canonical, IsOk());
  fs::rename(root_ + "/work", root_ + "/work.old");
  fs::create_directory_symlink(root_ + "/elsewhere", root_ + "/work");
  EXPECT_THAT(ReadFileAt(*canonical, 1024), StatusIs(Reason::kPathEscape));
  EXPECT_THAT(WriteFileAt(*canonical, "pwned", WriteMode::kOverwrite),
              StatusIs(Reason::kPathEscape));
  EXPECT_THAT(WriteFileAt(*canonical, "pwned", WriteMode::kAppend), StatusIs(Reason::kPathEscape));
  EXPECT_THAT(WriteFileAt(root_ + "/work/new.txt", "pwned", WriteMode::kCreate),
              StatusIs(Reason::kPathEscape));
  EXPECT_EQ(Slurp(root_ + "/elsewhere/notes.txt"), "private");
  EXPECT_FALSE(fs::exists(root_ + "/elsewhere/new.txt"));
}

TEST_F(FileIoTest, CreateWritesANewFileAtomically) {
  auto canonical = CanonicalPath(root_ + "/work/new.txt", false);
  ASSERT_THAT(canonical, IsOk());
  ASSERT_THAT(WriteFileAt(*canonical, "fresh", WriteMode::kCreate), IsOk());
  EXPECT_EQ(Slurp(*canonical), "fresh");
  struct stat st;
  ASSERT_EQ(::stat(canonical->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(Listing(root_ + "/work"), (std::vector<std::string>{"new.txt", "notes.txt"}));
}

TEST_F(FileIoTest, CreateOntoAnExistingNameIsAlreadyExists) {
  EXPECT_THAT(WriteFileAt(root_ + "/work/notes.txt", "x", WriteMode::kCreate),
              StatusIs(Reason::kAlreadyExists));
  EXPECT_EQ(Slurp(root_ + "/work/notes.txt"), "hello");
  EXPECT_EQ(Listing(root_ + "/work"), (std::vector<std::string>{"notes.txt"}));
}

TEST_F(FileIoTest, OverwriteReplacesContentsAndKeepsPermissions) {
  ASSERT_EQ(::chmod((root_ + "/work/notes.txt").c_str(), 0600), 0);
  ASSERT_THAT(WriteFileAt(root_ + "/work/notes.txt", "replaced", WriteMode::kOverwrite), IsOk());
  EXPECT_EQ(Slurp(root_ + "/work/notes.txt"), "replaced");
  struct stat st;
  ASSERT_EQ(::stat((root_ + "/work/notes.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(Listing(root_ + "/work"), (std::vector<std::string>{"notes.txt"}));
}

TEST_F(FileIoTest, OverwriteCreatesAMissingFile) {
  ASSERT_THAT(WriteFileAt(root_ + "/work/other.txt", "o", WriteMode::kOverwrite), IsOk());
  EXPECT_EQ(Slurp(root_ + "/work/other.txt"), "o");
}

TEST_F(FileIoTest, OverwriteOfADirectoryIsInvalidArgument) {
  fs::create_directory(root_ + "/work/sub");
  EXPECT_THAT(WriteFileAt(root_ + "/work/sub", "x", WriteMode::kOverwrite),
              StatusIs(Reason::kInvalidArgument));
}

TEST_F(FileIoTest, WriteIntoMissingDirectoryIsNotFound) {
  EXPECT_THAT(WriteFileAt(root_ + "/nope/x", "x", WriteMode::kOverwrite),
              StatusIs(Reason::kNotFound));
}

TEST_F(FileIoTest, AppendExtendsAndCreates) {
  ASSERT_THAT(WriteFileAt(root_ + "/work/notes.txt", " world", WriteMode::kAppend), IsOk());
  EXPECT_EQ(Slurp(root_ + "/work/notes.txt"), "hello world");
  ASSERT_THAT(WriteFileAt(root_ + "/work/log.txt", "1", WriteMode::kAppend), IsOk());
  ASSERT_THAT(WriteFileAt(root_ + "/work/log.txt", "2", WriteMode::kAppend), IsOk());
  EXPECT_EQ(Slurp(root_ + "/work/log.txt"), "12");
}

TEST_F(FileIoTest, HardLinkedFileIsPathEscapeUnlessAllowed) {
  // A tool links a file from outside the allowed root into it.
  fs::create_hard_link(root_ + "/elsewhere/notes.txt", root_ + "/work/link.txt");
  EXPECT_THAT(ReadFileAt(root_ + "/work/link.txt", 1024), StatusIs(Reason::kPathEscape));
  EXPECT_THAT(WriteFileAt(root_ + "/work/link.txt", "x", WriteMode::kAppend),
              StatusIs(Reason::kPathEscape));
  auto r = ReadFileAt(root_ + "/work/link.txt", 1024, HardLinks::kDangerAllow);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->contents, "private");
  // Replacing the name is safe: the other name keeps the old file.
  ASSERT_THAT(WriteFileAt(root_ + "/work/link.txt", "new", WriteMode::kOverwrite), IsOk());
  EXPECT_EQ(Slurp(root_ + "/work/link.txt"), "new");
  EXPECT_EQ(Slurp(root_ + "/elsewhere/notes.txt"), "private");
}

TEST_F(FileIoTest, LargeRoundTrip) {
  std::string big(3 * 1024 * 1024 + 17, 'z');
  big[12345] = '\0';
  ASSERT_THAT(WriteFileAt(root_ + "/work/big.bin", big, WriteMode::kOverwrite), IsOk());
  auto r = ReadFileAt(root_ + "/work/big.bin", big.size());
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->contents, big);
  EXPECT_THAT(ReadFileAt(root_ + "/work/big.bin", big.size() - 1),
              StatusIs(Reason::kPayloadTooLarge));
}

}  // namespace
}  // namespace custos::effects
