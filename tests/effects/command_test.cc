#include "custos/effects/command.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::effects {
namespace {

namespace fs = std::filesystem;
using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::custos::testing::TempDir;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;

// True once `pid` is gone or a zombie (killed, awaiting its new parent's wait).
bool ProcessIsDead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) {
    return true;
  }
  std::string line;
  std::getline(stat, line);
  size_t close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] == 'Z' ||
         line[close + 2] == 'X';
}

TEST(RunCommandTest, CapturesStdoutAndExitCode) {
  auto r = RunCommand({"/bin/echo", "hello", "world"}, "", CommandOptions{});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->stdout_data, "hello world\n");
  EXPECT_EQ(r->stderr_data, "");
  EXPECT_FALSE(r->signaled);
  EXPECT_EQ(r->exit_code, 0);
}

TEST(RunCommandTest, OnStdoutSeesEveryStdoutByteInOrderAndNoStderr) {
  CommandOptions opt;
  std::string seen;
  int calls = 0;
  opt.on_stdout = [&](std::string_view bytes) {
    seen.append(bytes);
    ++calls;
  };
  auto r = RunCommand({"/bin/sh", "-c", "echo one; echo err >&2; sleep 0.05; echo two"}, "", opt);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(seen, "one\ntwo\n");
  EXPECT_EQ(seen, r->stdout_data);
  EXPECT_GE(calls, 1);
}

TEST(RunCommandTest, NonZeroExitIsAResultNotAnError) {
  auto r = RunCommand({"/bin/sh", "-c", "echo oops >&2; exit 3"}, "", CommandOptions{});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->stderr_data, "oops\n");
}

TEST(RunCommandTest, ReportsTheKillingSignal) {
  auto r = RunCommand({"/bin/sh", "-c", "kill -TERM $$"}, "", CommandOptions{});
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->signaled);
  EXPECT_EQ(r->signal, SIGTERM);
}

TEST(RunCommandTest, FeedsStdin) {
  auto r = RunCommand({"/bin/cat"}, "line one\nline two\n", CommandOptions{});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->stdout_data, "line one\nline two\n");
}

TEST(RunCommandTest, FeedsLargeStdinWhileDrainingStdout) {
  std::string big(3 * 1024 * 1024, 'x');
  CommandOptions opt;
  opt.max_stdout_bytes = big.size();
  auto r = RunCommand({"/bin/cat"}, big, opt);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->stdout_data.size(), big.size());
}

TEST(RunCommandTest, ChildIgnoringStdinDoesNotRaiseSigpipe) {
  std::string big(2 * 1024 * 1024, 'x');
  auto r = RunCommand({"/bin/true"}, big, CommandOptions{});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->exit_code, 0);
}

TEST(RunCommandTest, EnvironmentIsEmptyByDefault) {
  ASSERT_EQ(::setenv("CUSTOS_LEAK_CHECK", "leaked", 1), 0);
  auto r = RunCommand({"/usr/bin/env"}, "", CommandOptions{});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->stdout_data, "");
}

TEST(RunCommandTest, OnlyAllowListedVariablesPass) {
  ASSERT_EQ(::setenv("CUSTOS_ALLOWED", "yes", 1), 0);
  ASSERT_EQ(::setenv("CUSTOS_LEAK_CHECK", "leaked", 1), 0);
  CommandOptions opt;
  opt.inherit_env = {"CUSTOS_ALLOWED", "CUSTOS_NOT_SET_ANYWHERE"};
  opt.set_env = {{"LANG", "C.UTF-8"}, {"CUSTOS_ALLOWED", "overridden"}};
  auto r = RunCommand({"/usr/bin/env"}, "", opt);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->stdout_data, "CUSTOS_ALLOWED=overridden\nLANG=C.UTF-8\n");
  opt.set_env.clear();
  auto r2 = RunCommand({"/usr/bin/env"}, "", opt);
  ASSERT_THAT(r2, IsOk());
  EXPECT_EQ(r2->stdout_data, "CUSTOS_ALLOWED=yes\n");
}

TEST(RunCommandTest, RunsInTheWorkingDirectory) {
  TempDir tmp;
  CommandOptions opt;
  opt.working_dir = fs::canonical(tmp.path()).string();
  auto r = RunCommand({"/bin/pwd"}, "", opt);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->stdout_data, opt.working_dir + "\n");
  auto d = RunCommand({"/bin/pwd"}, "", CommandOptions{});
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->stdout_data, "/\n");
}

TEST(RunCommandTest, TimeoutKillsTheWholeProcessGroup) {
  TempDir tmp;
  std::string pidfile = (tmp.path() / "bg.pid").string();
  CommandOptions opt;
  opt.timeout = milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  auto r = RunCommand({"/bin/sh", "-c", "sleep 30 & echo $! > " + pidfile + "; sleep 30"}, "", opt);
  EXPECT_THAT(r, StatusIs(Reason::kEffectTimeout));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  pid_t bg = 0;
  std::ifstream(pidfile) >> bg;
  ASSERT_GT(bg, 0);
  bool dead = false;
  for (int i = 0; i < 100 && !dead; ++i) {
    dead = ProcessIsDead(bg);
    if (!dead) {
      std::this_thread::sleep_for(milliseconds(10));
    }
  }
  EXPECT_TRUE(dead) << "background child " << bg << " survived";
}

TEST(RunCommandTest, BackgroundChildrenDoNotOutliveTheProgram) {
  CommandOptions opt;
  opt.timeout = milliseconds(10'000);
  auto start = std::chrono::steady_clock::now();
  auto r = RunCommand({"/bin/sh", "-c", "sleep 30 & echo started"}, "", opt);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->stdout_data, "started\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(RunCommandTest, OutputOverTheCapIsPayloadTooLarge) {
  CommandOptions opt;
  opt.max_stdout_bytes = 1000;
  auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(RunCommand({"/usr/bin/yes"}, "", opt), StatusIs(Reason::kPayloadTooLarge));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  CommandOptions err;
  err.max_stderr_bytes = 10;
  EXPECT_THAT(RunCommand({"/bin/sh", "-c", "echo 0123456789abcdef >&2"}, "", err),
              StatusIs(Reason::kPayloadTooLarge));
  // Exactly at the cap is fine.
  EXPECT_THAT(RunCommand({"/bin/sh", "-c", "printf 012345678 >&2"}, "", err), IsOk());
}

TEST(RunCommandTest, DoesNotLeakDescriptors) {
  int fd = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(fd, 3);
  auto r = RunCommand({"/bin/sh", "-c", "ls /proc/$$/fd"}, "", CommandOptions{});
  ::close(fd);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->stdout_data, Not(HasSubstr(std::to_string(fd) + "\n")));
  EXPECT_THAT(r->stdout_data, HasSubstr("0\n1\n2\n"));
}

TEST(RunCommandTest, RejectsBadArguments) {
  EXPECT_THAT(RunCommand({}, "", CommandOptions{}), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(RunCommand({"echo", "hi"}, "", CommandOptions{}), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(RunCommand({"/bin/echo", std::string("a\0b", 3)}, "", CommandOptions{}),
              StatusIs(Reason::kInvalidArgument));
  CommandOptions bad_env;
  bad_env.set_env = {{"A=B", "c"}};
  EXPECT_THAT(RunCommand({"/bin/true"}, "", bad_env), StatusIs(Reason::kInvalidArgument));
  CommandOptions bad_dir;
  bad_dir.working_dir = "relative";
  EXPECT_THAT(RunCommand({"/bin/true"}, "", bad_dir), StatusIs(Reason::kInvalidArgument));
}

TEST(RunCommandTest, MissingProgramIsNotFound) {
  EXPECT_THAT(RunCommand({"/nonexistent/program"}, "", CommandOptions{}),
              StatusIs(Reason::kNotFound));
}

TEST(RunCommandTest, NonExecutableIsEffectFailed) {
  TempDir tmp;
  std::string path = (tmp.path() / "script").string();
  std::ofstream(path) << "#!/bin/sh\necho hi\n";
  ::chmod(path.c_str(), 0644);
  auto r = RunCommand({path}, "", CommandOptions{});
  if (::geteuid() == 0 && r.ok()) {
    GTEST_SKIP() << "root may execute files without x bits on this kernel";
  }
  EXPECT_THAT(r, StatusIs(Reason::kEffectFailed));
}

}  // namespace
}  // namespace custos::effects
