#include "custos/effects/file_io.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "custos/effects/path.h"
#include "effects/fd_internal.h"

namespace custos::effects {

namespace internal {

bool FdPath(int fd, std::string* out, size_t max) {
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  std::string buf(max + 1, '\0');
  ssize_t n = ::readlink(link.c_str(), buf.data(), buf.size());
  if (n < 0 || static_cast<size_t>(n) > max) {
    return false;
  }
  buf.resize(static_cast<size_t>(n));
  *out = std::move(buf);
  return true;
}

}  // namespace internal

namespace {

using internal::ErrnoMessage;
using internal::UniqueFd;

Status OpenError(std::string_view what, int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Status(Reason::kNotFound, ErrnoMessage(what, err));
    case ELOOP:
      return Status(Reason::kPathEscape,
                    what.empty() ? "symbolic link in final component"
                                 : std::string(what) + ": symbolic link in final component");
    case EISDIR:
    case ENXIO:
    case ENODEV:
      return Status(Reason::kInvalidArgument, ErrnoMessage(what, err));
    default:
      return Status(Reason::kIoError, ErrnoMessage(what, err));
  }
}

// The name must look like CanonicalPath output: absolute, no empty, "." or ".." component.
Status ValidateCanonical(const std::string& p) {
  if (p.find('\0') != std::string::npos) {
    return Status(Reason::kInvalidArgument, "path contains a NUL byte");
  }
  if (p.size() < 2 || p.front() != '/' || p.back() == '/' || p.size() > kMaxPathBytes) {
    return Status(Reason::kInvalidArgument, "path is not a canonical absolute file path");
  }
  size_t i = 1;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) {
      j = p.size();
    }
    std::string_view c(p.data() + i, j - i);
    if (c.empty() || c == "." || c == "..") {
      return Status(Reason::kInvalidArgument, "path is not canonical");
    }
    i = j + 1;
  }
  return Status::Ok();
}

// The opened object must be reachable under exactly the approved name.
Status VerifyFd(int fd, const std::string& expected) {
  std::string actual;
  if (!internal::FdPath(fd, &actual, kMaxPathBytes + 32)) {
    return Status(Reason::kIoError, "cannot verify the opened file (/proc/self/fd unreadable)");
  }
  if (actual != expected) {
    return Status(Reason::kPathEscape,
                  "the opened file is not the approved path (a component was replaced)");
  }
  return Status::Ok();
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Status(Reason::kIoError, ErrnoMessage("write", errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Status Fsync(int fd, std::string_view what) {
  if (::fsync(fd) != 0) {
    return Status(Reason::kIoError, ErrnoMessage(what, errno));
  }
  return Status::Ok();
}

// Re-opens an O_PATH descriptor for I/O through its /proc magic link: same inode, no name lookup.
Result<UniqueFd> Reopen(int path_fd, int flags) {
  std::string link = "/proc/self/fd/" + std::to_string(path_fd);
  int fd = ::open(link.c_str(), flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return OpenError("reopen", errno);
  }
  return UniqueFd(fd);
}

Status RequireRegular(const struct stat& st, HardLinks links) {
  if (S_ISLNK(st.st_mode)) {
    return Status(Reason::kPathEscape, "final component is a symbolic link");
  }
  if (!S_ISREG(st.st_mode)) {
    return Status(Reason::kInvalidArgument, "not a regular file");
  }
  if (links == HardLinks::kRefuse && st.st_nlink > 1) {
    return Status(Reason::kPathEscape, "file has " + std::to_string(st.st_nlink) +
                                           " hard links; its other names are "
                                           "not covered by path policy");
  }
  return Status::Ok();
}

struct DirAndName {
  std::string dir;
  std::string name;
};

DirAndName Split(const std::string& canonical) {
  size_t slash = canonical.rfind('/');
  return {slash == 0 ? "/" : canonical.substr(0, slash), canonical.substr(slash + 1)};
}

Result<UniqueFd> OpenVerifiedDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    struct stat st;
    if ((err == ENOTDIR || err == ELOOP) && ::lstat(dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      return Status(Reason::kPathEscape, "the directory was replaced by a symbolic link");
    }
    return OpenError("open directory", err);
  }
  UniqueFd dirfd(fd);
  CUSTOS_RETURN_IF_ERROR(VerifyFd(dirfd.get(), dir));
  return dirfd;
}

std::string TempName() {
  unsigned char rnd[8];
  size_t got = 0;
  while (got < sizeof rnd) {
    ssize_t n = ::getrandom(rnd + got, sizeof rnd - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (errno != EINTR) {
      break;  // O_EXCL below still prevents collisions; retries pick another name
    }
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = ".custos-";
  for (unsigned char b : rnd) {
    name += kHex[b >> 4];
    name += kHex[b & 15];
  }
  name += ".tmp";
  return name;
}

Status WriteReplacing(const std::string& canonical, std::string_view data, WriteMode mode) {
  DirAndName dn = Split(canonical);
  CUSTOS_ASSIGN_OR_RETURN(UniqueFd dirfd, OpenVerifiedDir(dn.dir));
  mode_t perms = 0644;
  struct stat st;
  if (::fstatat(dirfd.get(), dn.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (mode == WriteMode::kCreate) {
      return Status(Reason::kAlreadyExists, "file already exists");
    }
    CUSTOS_RETURN_IF_ERROR(RequireRegular(st, HardLinks::kDangerAllow));  // rename swaps this name
    perms = st.st_mode & 07777;
  } else if (errno != ENOENT) {
    return OpenError("fstatat", errno);
  }

  std::string tmp;
  UniqueFd out;
  for (int attempt = 0; attempt < 8 && !out.valid(); ++attempt) {
    tmp = TempName();
    int fd = ::openat(dirfd.get(), tmp.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd >= 0) {
      out = UniqueFd(fd);
    } else if (errno != EEXIST) {
      return OpenError("create temporary file", errno);
    }
  }
  if (!out.valid()) {
    return Status(Reason::kIoError, "cannot create a unique temporary file");
  }
  auto cleanup_and = [&](Status s) {
    ::unlinkat(dirfd.get(), tmp.c_str(), 0);
    return s;
  };
  Status s = WriteAll(out.get(), data);
  if (s.ok() && ::fchmod(out.get(), perms) != 0) {
    s = Status(Reason::kIoError, ErrnoMessage("fchmod", errno));
  }
  if (s.ok()) {
    s = Fsync(out.get(), "fsync");
  }
  out.Reset();
  if (!s.ok()) {
    return cleanup_and(std::move(s));
  }

  if (mode == WriteMode::kCreate) {
    if (::renameat2(dirfd.get(), tmp.c_str(), dirfd.get(), dn.name.c_str(), RENAME_NOREPLACE) !=
        0) {
      int err = errno;
      if (err == EEXIST) {
        return cleanup_and(Status(Reason::kAlreadyExists, "file already exists"));
      }
      if (err != EINVAL && err != ENOSYS) {
        return cleanup_and(OpenError("rename", err));
      }
      // The filesystem lacks RENAME_NOREPLACE: link(2) is atomic and fails on an existing name.
      if (::linkat(dirfd.get(), tmp.c_str(), dirfd.get(), dn.name.c_str(), 0) != 0) {
        int lerr = errno;
        return cleanup_and(lerr == EEXIST ? Status(Reason::kAlreadyExists, "file already exists")
                                          : OpenError("link", lerr));
      }
      ::unlinkat(dirfd.get(), tmp.c_str(), 0);
    }
  } else if (::renameat(dirfd.get(), tmp.c_str(), dirfd.get(), dn.name.c_str()) != 0) {
    return cleanup_and(OpenError("rename", errno));
  }
  return Fsync(dirfd.get(), "fsync directory");
}

Status Append(const std::string& canonical, std::string_view data, HardLinks links) {
  DirAndName dn = Split(canonical);
  CUSTOS_ASSIGN_OR_RETURN(UniqueFd dirfd, OpenVerifiedDir(dn.dir));
  UniqueFd fd;
  bool created = false;
  for (int attempt = 0; attempt < 4 && !fd.valid(); ++attempt) {
    int pfd = ::openat(dirfd.get(), dn.name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (pfd >= 0) {
      UniqueFd path_fd(pfd);
      struct stat st;
      if (::fstat(path_fd.get(), &st) != 0) {
        return OpenError("fstat", errno);
      }
      CUSTOS_RETURN_IF_ERROR(RequireRegular(st, links));
      CUSTOS_ASSIGN_OR_RETURN(fd, Reopen(path_fd.get(), O_WRONLY | O_APPEND));
    } else if (errno == ENOENT) {
      int nfd = ::openat(dirfd.get(), dn.name.c_str(),
                         O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
                         0644);
      if (nfd >= 0) {
        fd = UniqueFd(nfd);
        created = true;
      } else if (errno != EEXIST) {
        return OpenError("create", errno);
      }
    } else {
      return OpenError("open", errno);
    }
  }
  if (!fd.valid()) {
    return Status(Reason::kIoError, "file keeps appearing and disappearing");
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return OpenError("fstat", errno);
  }
  CUSTOS_RETURN_IF_ERROR(RequireRegular(st, links));
  CUSTOS_RETURN_IF_ERROR(VerifyFd(fd.get(), canonical));
  CUSTOS_RETURN_IF_ERROR(WriteAll(fd.get(), data));
  CUSTOS_RETURN_IF_ERROR(Fsync(fd.get(), "fsync"));
  if (created) {
    return Fsync(dirfd.get(), "fsync directory");
  }
  return Status::Ok();
}

}  // namespace

Result<FileData> ReadFileAt(const std::string& canonical, size_t max_bytes, HardLinks links) {
  CUSTOS_RETURN_IF_ERROR(ValidateCanonical(canonical));
  int pfd = ::open(canonical.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (pfd < 0) {
    return OpenError("open", errno);
  }
  UniqueFd path_fd(pfd);
  struct stat st;
  if (::fstat(path_fd.get(), &st) != 0) {
    return OpenError("fstat", errno);
  }
  CUSTOS_RETURN_IF_ERROR(RequireRegular(st, links));
  CUSTOS_RETURN_IF_ERROR(VerifyFd(path_fd.get(), canonical));
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return Status(Reason::kPayloadTooLarge, "file is " + std::to_string(st.st_size) +
                                                " bytes; the cap is " + std::to_string(max_bytes));
  }
  CUSTOS_ASSIGN_OR_RETURN(UniqueFd fd, Reopen(path_fd.get(), O_RDONLY));
  FileData out;
  out.device = st.st_dev;
  out.inode = st.st_ino;
  out.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  out.mode = st.st_mode & 07777;
  out.contents.resize(static_cast<size_t>(st.st_size));
  size_t used = 0;
  for (;;) {
    if (used == out.contents.size()) {
      if (used > max_bytes) {
        return Status(Reason::kPayloadTooLarge,
                      "file grew past the cap of " + std::to_string(max_bytes) + " bytes");
      }
      out.contents.resize(std::max<size_t>(used * 2, used + 4096));
    }
    ssize_t n = ::read(fd.get(), out.contents.data() + used, out.contents.size() - used);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Status(Reason::kIoError, ErrnoMessage("read", errno));
    }
    if (n == 0) {
      break;
    }
    used += static_cast<size_t>(n);
  }
  if (used > max_bytes) {
    return Status(Reason::kPayloadTooLarge,
                  "file grew past the cap of " + std::to_string(max_bytes) + " bytes");
  }
  out.contents.resize(used);
  return out;
}

Status WriteFileAt(const std::string& canonical, std::string_view data, WriteMode mode,
                   HardLinks links) {
  CUSTOS_RETURN_IF_ERROR(ValidateCanonical(canonical));
  if (mode == WriteMode::kAppend) {
    return Append(canonical, data, links);
  }
  return WriteReplacing(canonical, data, mode);
}

}  // namespace custos::effects
