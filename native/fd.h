// A file descriptor opened by native code, closed when it goes out of scope (on every path
// out of a function, error paths included).
#pragma once
#include <unistd.h>

namespace cowlab {

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

}  // namespace cowlab
