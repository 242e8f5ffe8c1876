// Waiting with a deadline, for the parent side of every mechanism that forks (the spawn probe,
// the process tree): every wait on a child has a deadline. One routine polls a
// descriptor until it is readable or the deadline passes; the waits for a reply byte and for a
// process to exit are built on it. Worker threads only, never a forked child (they use only
// syscalls, so the parent may call them after a fork).
#pragma once
#include <sys/types.h>

#include <cstdint>

namespace cowlab {
namespace wait {

enum Result {
  kReady,     // the descriptor is readable (WaitByte: a byte was read; WaitExited: it exited)
  kEof,       // WaitByte: the other end closed (or the read failed)
  kTimedOut,  // the deadline (CLOCK_MONOTONIC ns, child::NowNs) passed first
  kFailed,    // poll (or pidfd_open) failed; errno says why
};

// Polls `fd` for POLLIN until the deadline; EINTR is retried. kReady, kTimedOut or kFailed.
// A deadline already past (0, say) checks once without waiting.
Result WaitReadable(int fd, uint64_t deadlineNs);

// Waits for one byte on `fd`: kReady with *byte set, kEof, kTimedOut or kFailed.
Result WaitByte(int fd, uint64_t deadlineNs, char* byte);

// Waits until process `pid` has exited (a zombie, or already reaped), whoever's child it is:
// its pidfd becomes readable. kReady (exited, or no such process: ESRCH), kTimedOut, or
// kFailed (errno from pidfd_open, e.g. ENOSYS before Linux 5.3, or from poll).
Result WaitExited(pid_t pid, uint64_t deadlineNs);

}  // namespace wait
}  // namespace cowlab
