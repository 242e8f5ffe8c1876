// Waiting with a deadline (see wait.h).
#include "wait.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "child.h"

namespace cowlab {
namespace wait {

Result WaitReadable(int fd, uint64_t deadlineNs) {
  struct pollfd p = {fd, POLLIN, 0};
  for (;;) {
    // At most a second per poll: poll's timeout is an int of ms (a long deadline would overflow
    // it), and the deadline is checked again on CLOCK_MONOTONIC after each one. Once the
    // deadline has passed, one last poll that does not wait: a deadline in the past asks
    // "is it readable now?".
    uint64_t now = child::NowNs();
    int timeoutMs = 0;
    if (now < deadlineNs) {
      uint64_t leftMs = (deadlineNs - now) / 1000000 + 1;
      timeoutMs = static_cast<int>(leftMs > 1000 ? 1000 : leftMs);
    }
    int r = poll(&p, 1, timeoutMs);
    if (r > 0) return kReady;
    if (r < 0 && errno != EINTR) return kFailed;
    if (r == 0 && timeoutMs == 0) return kTimedOut;
  }
}

Result WaitByte(int fd, uint64_t deadlineNs, char* byte) {
  Result r = WaitReadable(fd, deadlineNs);
  if (r != kReady) return r;
  for (;;) {
    ssize_t n = read(fd, byte, 1);
    if (n == 1) return kReady;
    if (n < 0 && errno == EINTR) continue;
    return kEof;
  }
}

Result WaitExited(pid_t pid, uint64_t deadlineNs) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return errno == ESRCH ? kReady : kFailed;
  Result r = WaitReadable(pidfd, deadlineNs);
  int e = errno;
  close(pidfd);
  errno = e;
  return r;
}

}  // namespace wait
}  // namespace cowlab
