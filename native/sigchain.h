// Handing a signal this process's handler does not own to the handler installed before it,
// exactly as the kernel would have delivered it (the mask the previous handler asked for,
// SA_NODEFER and SA_RESETHAND honoured). With no previous handler (SIG_DFL, SIG_IGN) the
// default action is restored and the function returns: a fault's instruction runs again and
// the process dies by the signal, as it would have without cowlab. Async-signal-safe.
#pragma once
#include <signal.h>
#include <string.h>
#include <ucontext.h>

namespace cowlab {

inline void ChainSignal(const struct sigaction& prev, int sig, siginfo_t* info, void* ucontext) {
  bool siginfo = (prev.sa_flags & SA_SIGINFO) != 0;
  if (!siginfo && (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN)) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, nullptr);
    return;
  }
  sigset_t mask = static_cast<ucontext_t*>(ucontext)->uc_sigmask;
  sigorset(&mask, &mask, &prev.sa_mask);
  if ((prev.sa_flags & SA_NODEFER) == 0) sigaddset(&mask, sig);
  else sigdelset(&mask, sig);
  sigset_t ours;
  pthread_sigmask(SIG_SETMASK, &mask, &ours);
  if ((prev.sa_flags & SA_RESETHAND) != 0) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, nullptr);
  }
  if (siginfo) prev.sa_sigaction(sig, info, ucontext);
  else prev.sa_handler(sig);
  pthread_sigmask(SIG_SETMASK, &ours, nullptr);
}

}  // namespace cowlab
