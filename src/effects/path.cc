#include "custos/effects/path.h"

#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "effects/fd_internal.h"

namespace custos::effects {
namespace {

using internal::ErrnoMessage;

constexpr decltype(statfs::f_type) kProcSuperMagic = 0x9fa0;  // PROC_SUPER_MAGIC

bool LexicallyUnderProc(std::string_view p) { return p == "/proc" || p.starts_with("/proc/"); }

Status LookupError(std::string_view what, int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Status(Reason::kNotFound, ErrnoMessage(what, err));
    case ENAMETOOLONG:
    case ELOOP:
      return Status(Reason::kInvalidArgument, ErrnoMessage(what, err));
    default:
      return Status(Reason::kIoError, ErrnoMessage(what, err));
  }
}

// Refuses `dir_or_file` if it lies on a procfs mount (wherever that is mounted).
Status CheckNotOnProcfs(const std::string& dir_or_file) {
  struct statfs sfs;
  if (::statfs(dir_or_file.c_str(), &sfs) != 0) {
    return LookupError("statfs", errno);
  }
  if (sfs.f_type == kProcSuperMagic) {
    return Status(Reason::kPathEscape, "path lies on procfs");
  }
  return Status::Ok();
}

// Appends the components of `text` to `pending` in reverse order, so pending.back() is next.
void PushComponents(std::string_view text, std::vector<std::string>* pending) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == '/') {
      ++i;
    }
    size_t j = i;
    while (j < text.size() && text[j] != '/') {
      ++j;
    }
    if (j > i) {
      parts.emplace_back(text.substr(i, j - i));
    }
    i = j;
  }
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    pending->push_back(std::move(*it));
  }
}

struct Resolved {
  std::string path;
  mode_t mode = 0;
};

// Resolves an absolute path whose every component must exist, following links by their text.
Result<Resolved> ResolveExisting(std::string_view input) {
  std::vector<std::string> pending;
  if (input.size() > 1 && input.back() == '/') {
    pending.emplace_back(".");  // a trailing slash demands a directory, as in realpath(3)
  }
  PushComponents(input, &pending);
  std::string cur;  // canonical prefix resolved so far; empty means "/"
  mode_t cur_mode = S_IFDIR;
  int follows = 0;
  while (!pending.empty()) {
    std::string name = std::move(pending.back());
    pending.pop_back();
    if (!S_ISDIR(cur_mode)) {
      return Status(Reason::kNotFound, "a non-directory is used as a directory");
    }
    if (name == ".") {
      continue;
    }
    if (name == "..") {
      cur.resize(cur.rfind('/') == std::string::npos ? 0 : cur.rfind('/'));
      cur_mode = S_IFDIR;
      continue;
    }
    std::string candidate = cur + "/" + name;
    if (candidate.size() > kMaxPathBytes) {
      return Status(Reason::kInvalidArgument, "resolved path exceeds 4096 bytes");
    }
    if (LexicallyUnderProc(candidate)) {
      return Status(Reason::kPathEscape, "path resolves into /proc");
    }
    struct stat st;
    if (::lstat(candidate.c_str(), &st) != 0) {
      return LookupError("lstat", errno);
    }
    if (!S_ISLNK(st.st_mode)) {
      cur = std::move(candidate);
      cur_mode = st.st_mode;
      continue;
    }
    if (++follows > kMaxSymlinkFollows) {
      return Status(Reason::kInvalidArgument, "too many levels of symbolic links");
    }
    // A link that lives on procfs may be a magic link: its text need not name its target.
    CUSTOS_RETURN_IF_ERROR(CheckNotOnProcfs(cur.empty() ? "/" : cur));
    char target[kMaxPathBytes + 1];
    ssize_t n = ::readlink(candidate.c_str(), target, sizeof target);
    if (n < 0) {
      return LookupError("readlink", errno);
    }
    if (static_cast<size_t>(n) >= sizeof target) {
      return Status(Reason::kInvalidArgument, "symbolic link target exceeds 4096 bytes");
    }
    if (n == 0) {
      return Status(Reason::kNotFound, "empty symbolic link");
    }
    std::string_view text(target, static_cast<size_t>(n));
    if (text.front() == '/') {
      cur.clear();
    }
    PushComponents(text, &pending);
    cur_mode = S_IFDIR;  // `cur` is still the directory that holds the link
  }
  Resolved out;
  out.path = cur.empty() ? "/" : cur;
  out.mode = cur_mode;
  CUSTOS_RETURN_IF_ERROR(CheckNotOnProcfs(out.path));
  return out;
}

Status ValidateInput(std::string_view path) {
  if (path.find('\0') != std::string_view::npos) {
    return Status(Reason::kInvalidArgument, "path contains a NUL byte");
  }
  if (path.empty() || path.front() != '/') {
    return Status(Reason::kInvalidArgument, "path is not absolute");
  }
  if (path.size() > kMaxPathBytes) {
    return Status(Reason::kInvalidArgument, "path exceeds 4096 bytes");
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> CanonicalPath(std::string_view path, bool must_exist) {
  CUSTOS_RETURN_IF_ERROR(ValidateInput(path));
  if (must_exist) {
    CUSTOS_ASSIGN_OR_RETURN(Resolved r, ResolveExisting(path));
    return std::move(r.path);
  }
  size_t slash = path.rfind('/');
  std::string_view parent_text = path.substr(0, slash + 1);
  std::string_view name = path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") {
    return Status(Reason::kInvalidArgument,
                  "a write target must end in a file name (not '.', '..' or '/')");
  }
  CUSTOS_ASSIGN_OR_RETURN(Resolved parent, ResolveExisting(parent_text));
  if (!S_ISDIR(parent.mode)) {
    return Status(Reason::kNotFound, "parent is not a directory");
  }
  std::string candidate =
      parent.path == "/" ? "/" + std::string(name) : parent.path + "/" + std::string(name);
  if (candidate.size() > kMaxPathBytes) {
    return Status(Reason::kInvalidArgument, "resolved path exceeds 4096 bytes");
  }
  struct stat st;
  if (::lstat(candidate.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return candidate;  // parent already checked: not on procfs
    }
    return LookupError("lstat", errno);
  }
  if (!S_ISLNK(st.st_mode)) {
    return candidate;
  }
  Result<Resolved> target = ResolveExisting(candidate);
  if (!target.ok()) {
    if (target.status().reason() == Reason::kNotFound) {
      return Status(Reason::kPathEscape, "write target is a dangling symbolic link");
    }
    return std::move(target).status();
  }
  return std::move(target->path);
}

}  // namespace custos::effects
