#pragma once
// RunCommand runs one program to completion with a clean slate and hard bounds, and reports what
// happened; whether a non-zero exit is a failure is the kernel's call, not this function's.
//
// Guarantees:
//   * argv[0] is an absolute path that is executed directly (no PATH search, no shell unless argv
//     names one). No argument may contain a NUL byte, nor argv be empty (kInvalidArgument). A
//     program that does not exist or cannot be executed is kNotFound / kEffectFailed.
//   * The environment is EMPTY except for variables copied by name from this process
//     (`inherit_env`) and variables given explicitly (`set_env`, which wins on a clash).
//   * The child starts in `working_dir` ("/" by default), in a new process group, with default
//     signal dispositions, an empty signal mask and only descriptors 0, 1 and 2 open: stdin is a
//     pipe fed `stdin_data` then closed, stdout and stderr are pipes.
//   * Timeout: at `timeout` the whole process group is killed (SIGKILL) and the call fails with
//     kEffectTimeout. Output over `max_stdout_bytes` / `max_stderr_bytes` likewise kills the group
//     and fails with kPayloadTooLarge. When the program itself exits, anything left in its
//     process group is killed too, so background children cannot outlive the effect (a child that
//     leaves the group with setsid() can; confining that is the sandbox's job).
//   * The caller's SIGPIPE disposition is untouched: a child that stops reading stdin early does
//     not raise SIGPIPE in this process.
// REQUIRES: nothing else in the process reaps children it did not start (waitpid(-1), SIGCHLD set
// to SIG_IGN), or the exit status is lost (kInternal).
//
// Thread-safe: concurrent calls are independent (posix_spawn; every descriptor is O_CLOEXEC and
// the child closes all others).

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "custos/core/result.h"

namespace custos::effects {

struct CommandOptions {
  std::vector<std::string> inherit_env;  // names copied from this process's environment, if set
  std::vector<std::pair<std::string, std::string>> set_env;  // NAME, value
  std::string working_dir = "/";                             // absolute
  std::chrono::milliseconds timeout{30'000};
  size_t max_stdout_bytes = size_t{1} << 20;
  size_t max_stderr_bytes = size_t{1} << 20;
  // If set, called on the calling thread with each piece of standard output as it arrives (the
  // same bytes end up in CommandResult::stdout_data), e.g. to stream progress. It must not block.
  std::function<void(std::string_view)> on_stdout;
};

struct CommandResult {
  bool signaled = false;  // terminated by a signal rather than exit()
  int exit_code = 0;      // valid when !signaled
  int signal = 0;         // valid when signaled
  std::string stdout_data;
  std::string stderr_data;
  std::chrono::milliseconds duration{0};
};

Result<CommandResult> RunCommand(const std::vector<std::string>& argv, std::string_view stdin_data,
                                 const CommandOptions& opt);

}  // namespace custos::effects
