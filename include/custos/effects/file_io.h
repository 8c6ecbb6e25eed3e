#pragma once
// ReadFileAt and WriteFileAt operate on a path that CanonicalPath (path.h) produced and policy
// approved, and guarantee they touched exactly that file: the last component is opened with
// O_NOFOLLOW, and the opened descriptor's own name (/proc/self/fd/N) must equal `canonical`. So a
// symbolic link swapped into any component between the check and the use is caught and refused
// with kPathEscape instead of being followed. Only regular files are read or written (a FIFO,
// device, socket or directory is kInvalidArgument); nothing here blocks on a FIFO.
//
// Failure modes: kInvalidArgument (not canonical-looking: relative, NUL, too long; not a regular
// file), kNotFound (missing), kAlreadyExists (kCreate onto an existing name), kPathEscape (the
// object reached is not the one named, or has other hard-linked names), kPayloadTooLarge (read
// cap), kIoError (anything the OS refused, including a missing /proc, which makes verification
// impossible: fail closed).
//
// Thread-safe: no shared state. Concurrent writers to one file get last-rename-wins whole files.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "custos/core/result.h"

namespace custos::effects {

struct FileData {
  std::string contents;
  uint64_t device = 0;  // st_dev and st_ino identify the file that was read
  uint64_t inode = 0;
  int64_t mtime_ns = 0;  // modification time, nanoseconds since the epoch
  mode_t mode = 0;       // permission bits (07777)
};

// A file with several hard links has names path policy never sees: a tool run in the workspace
// could link a file from outside the allowed roots into it. Reading or appending to such a file is
// refused (kPathEscape) unless the caller opts in. Replacing one (kCreate/kOverwrite) is always
// safe: the rename swaps this name only and leaves the other names' file untouched.
enum class HardLinks {
  kRefuse,       // st_nlink > 1 is kPathEscape
  kDangerAllow,  // only when every name the file could have is inside the allowed roots
};

// Reads the regular file `canonical` whole. Fails with kPayloadTooLarge if it holds more than
// `max_bytes` bytes (checked on fstat and again while reading, so a growing file is caught).
// REQUIRES: `canonical` came from CanonicalPath(..., true).
Result<FileData> ReadFileAt(const std::string& canonical, size_t max_bytes,
                            HardLinks links = HardLinks::kRefuse);

enum class WriteMode {
  kCreate,     // new file only; kAlreadyExists if the name exists. Atomic.
  kOverwrite,  // create or replace. Atomic: readers see the old or the new file, never a mix.
  kAppend,     // append to the file, creating it if missing. Not atomic: a crash may leave a
               // partial append.
};

// Writes `data` to `canonical`. kCreate and kOverwrite write a temporary file in the same
// directory (".custos-<random>.tmp"), fsync it, rename it over the name and fsync the directory,
// so an acknowledged write is durable. A replaced file keeps its permission bits; a new file gets
// 0644. Replacing a symbolic link or special file is refused (kPathEscape / kInvalidArgument): the
// name must hold a regular file or nothing. kAppend fsyncs the file before returning.
// REQUIRES: `canonical` came from CanonicalPath(..., false).
Status WriteFileAt(const std::string& canonical, std::string_view data, WriteMode mode,
                   HardLinks links = HardLinks::kRefuse);

}  // namespace custos::effects
