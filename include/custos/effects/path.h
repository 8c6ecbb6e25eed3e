#pragma once
// CanonicalPath turns a caller-supplied path into the one absolute name the kernel checks against
// policy and then operates on. It resolves `.`, `..` and every symbolic link component by
// component (like realpath(3)), so the result names the real target: a link inside an allowed root
// that points elsewhere yields the elsewhere, and policy sees it.
//
// Strict rules (each failure names the rule in the message):
//   * the input must be absolute (kInvalidArgument), contain no NUL byte (kInvalidArgument) and be
//     at most kMaxPathBytes long, as must the result (kInvalidArgument);
//   * procfs is refused outright (kPathEscape): resolution may not pass through /proc at all (even
//     "/proc/../etc" is refused), no symbolic link followed may live on a procfs mount wherever it
//     is mounted, and the result may not lie on one (checked with statfs).
//     /proc/<pid>/{root,cwd,exe,fd/N} and /dev/fd, /dev/stdin,... are magic links whose target is
//     an object, not a name, so their text cannot be trusted to name what an open would reach;
//     /proc files themselves (environ, mem, ...) are never an agent's business;
//   * more than kMaxSymlinkFollows links (a loop) is kInvalidArgument;
//   * a missing component is kNotFound, and so is a non-directory used as a directory; a component
//     the process may not search is kIoError.
// With must_exist == false (a write target) the parent directory must exist and is resolved; the
// final component must be a plain name (not `.`/`..`, no trailing slash: kInvalidArgument). If it
// already exists and is a symbolic link the link is resolved like any other; a dangling final
// link is kPathEscape (a write through it would create a file whose name policy never saw).
//
// The result is a snapshot: the filesystem may change after it is computed. Operate on it only
// with file_io.h, which re-verifies the opened object against the name (see ReadFileAt).
//
// Thread-safe: a pure function of the filesystem; no process state (cwd, umask) is read.

#include <cstddef>
#include <string>
#include <string_view>

#include "custos/core/result.h"

namespace custos::effects {

inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr int kMaxSymlinkFollows = 40;

// Returns the canonical absolute path of `path` (no `.`/`..` components, no symbolic links, no
// repeated or trailing slashes; "/" for the root). On failure returns a Status as described above.
Result<std::string> CanonicalPath(std::string_view path, bool must_exist);

}  // namespace custos::effects
