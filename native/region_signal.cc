// The SIGSEGV handler of the region manager. It resolves only the faults it owns (SEGV_ACCERR
// inside a registered view, on a page whose state says a store or load there is the COW
// algorithm's business) and hands every other fault to the handler that was installed before
// it (Node's WebAssembly trap handler), exactly as the kernel would have delivered it. With
// no previous handler (SIG_DFL, SIG_IGN) it restores the default action and returns: the
// faulting instruction runs again and the process dies by SIGSEGV, as without cowlab.
//
// Async-signal-safe throughout: no malloc, no stdio, errno saved and restored.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

#include "region.h"
#include "sigchain.h"

namespace cowlab {
namespace region {
namespace {

struct sigaction g_prev;
std::atomic<int> g_state{0};  // 0: not installed, 1: installing, 2: installed
int g_installError = 0;

// 1 for a write, 0 for a read, -1 when the architecture does not say.
int AccessKind(void* ucontext) {
#if defined(__x86_64__)
  const ucontext_t* uc = static_cast<const ucontext_t*>(ucontext);
  return (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0 ? 1 : 0;  // page fault error code bit 1: write
#elif defined(__aarch64__)
  // The ESR record in the signal frame's extension area; WnR (bit 6) for data aborts.
  const ucontext_t* uc = static_cast<const ucontext_t*>(ucontext);
  const uint8_t* p = reinterpret_cast<const uint8_t*>(uc->uc_mcontext.__reserved);
  const uint8_t* end = p + sizeof(uc->uc_mcontext.__reserved);
  while (p + 8 <= end) {
    uint32_t magic, size;
    memcpy(&magic, p, 4);
    memcpy(&size, p + 4, 4);
    if (magic == 0 || size < 8) break;
    if (magic == 0x45535201 && size >= 16) {
      uint64_t esr;
      memcpy(&esr, p + 8, 8);
      uint64_t ec = esr >> 26;
      if (ec == 0x24 || ec == 0x25) return (esr & (1u << 6)) != 0 ? 1 : 0;
      return -1;
    }
    p += size;
  }
  return -1;
#else
  (void)ucontext;
  return -1;
#endif
}

// Delivers the fault to the previous handler as the kernel would have (sigchain.h).
void Chain(int sig, siginfo_t* info, void* ucontext) { ChainSignal(g_prev, sig, info, ucontext); }

void OnSegv(int sig, siginfo_t* info, void* ucontext) {
  int savedErrno = errno;
  bool handled = info != nullptr && info->si_code == SEGV_ACCERR &&
                 HandleFault(reinterpret_cast<uintptr_t>(info->si_addr), AccessKind(ucontext));
  errno = savedErrno;
  if (!handled) Chain(sig, info, ucontext);
  errno = savedErrno;
}

// ---- message formatting without stdio ----

struct Text {
  char buf[768];
  size_t len = 0;
  Text& s(const char* str) {
    while (*str != '\0' && len < sizeof(buf) - 1) buf[len++] = *str++;
    return *this;
  }
  Text& dec(uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0 && len < sizeof(buf) - 1) buf[len++] = tmp[--n];
    return *this;
  }
  Text& hex(uint64_t v) {
    s("0x");
    char tmp[16];
    size_t n = 0;
    do {
      tmp[n++] = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v != 0);
    while (n > 0 && len < sizeof(buf) - 1) buf[len++] = tmp[--n];
    return *this;
  }
};

const char* ErrnoText(int err) {
  switch (err) {
    case ENOMEM: return "ENOMEM";
    case ENOSPC: return "ENOSPC";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EAGAIN: return "EAGAIN";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EFBIG: return "EFBIG";
    case EINTR: return "EINTR";
    default: return nullptr;
  }
}

void WriteAll(const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

int InstallHandler() {
  int expected = 0;
  if (!g_state.compare_exchange_strong(expected, 1)) {
    while (g_state.load() == 1) sched_yield();
    return g_state.load() == 2 ? 0 : g_installError;
  }
  RecordOwnerProcess();
  if (int e = InstallForkHooks(); e != 0) {
    g_installError = e;
    g_state.store(0);
    return g_installError;
  }
  // Read the current handler first, so that no fault ever sees a half-written g_prev.
  if (sigaction(SIGSEGV, nullptr, &g_prev) != 0) {
    g_installError = errno;
    g_state.store(0);
    return g_installError;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = OnSegv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, nullptr) != 0) {
    g_installError = errno;
    g_state.store(0);
    return g_installError;
  }
  g_state.store(2);
  return 0;
}

const char* PreviousHandlerKind() {
  if (g_state.load() != 2) return "none";
  if ((g_prev.sa_flags & SA_SIGINFO) != 0) return "siginfo";
  if (g_prev.sa_handler == SIG_DFL) return "default";
  if (g_prev.sa_handler == SIG_IGN) return "ignore";
  return "handler";
}

void Fatal(const char* msg) {
  WriteAll(msg, strlen(msg));
  abort();
}

// The documented fatal message (docs/region.md, "When a copy-on-write break fails").
void FatalFault(uintptr_t addr, const View* v, uint64_t page, const Status& st) {
  Text t;
  t.s("cowlab: fatal: a store to ").hex(addr).s(" (page ").dec(page).s(" of ").dec(v->pages)
      .s(" in a cowlab region view) needs a copy-on-write break that failed: ");
  if (st.poolFull) {
    t.s("the region's frame pool is full (maxFrames ").dec(v->region->maxFrames).s(")");
  } else {
    t.s(st.syscall != nullptr ? st.syscall : "?").s("() failed: ");
    const char* name = ErrnoText(st.err);
    if (name != nullptr) t.s(name);
    else t.s("errno ").dec(static_cast<uint64_t>(st.err));
    if (st.err == ENOMEM) t.s(" (vm.max_map_count reached, or out of memory)");
  }
  t.s(". The store cannot complete without a wrong value, so the process aborts. Break COW from JS "
      "first with view.prepareWrite(start, end): it reports this failure as a CowlabError.\n");
  WriteAll(t.buf, t.len);
  abort();
}

}  // namespace region
}  // namespace cowlab
