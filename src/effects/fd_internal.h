#pragma once
// Private helpers shared by the effects sources: an owning file descriptor and errno-to-Status
// mapping. Not part of the public API.
//
// Thread-compatible.

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "custos/core/status.h"

namespace custos::effects::internal {

// Owns one file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

 private:
  int fd_ = -1;
};

// "<what>: <strerror(err)>", built without the thread-unsafe strerror().
inline std::string ErrnoMessage(std::string_view what, int err) {
  char buf[128];
  const char* text = strerror_r(err, buf, sizeof buf);  // GNU variant returns the text
  std::string out(what);
  out += ": ";
  out += text;
  return out;
}

// Reads the path the kernel records for an open descriptor (/proc/self/fd/N). Returns false if it
// cannot be read (procfs missing) or is longer than `max`.
bool FdPath(int fd, std::string* out, size_t max);

}  // namespace custos::effects::internal
