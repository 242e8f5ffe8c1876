// The reference-counted subreaper of the process trees (subreaper.h), and for tests and tools
// that adopt orphans themselves, its JS functions:
//   setChildSubreaper(on) -> previous (boolean)
//   reapChild(pid)        -> waitpid status, or null while the child has not exited (WNOHANG)
#include "subreaper.h"

#include <sys/prctl.h>
#include <sys/wait.h>

#include <cerrno>
#include <mutex>
#include <string>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace cowlab {
namespace subreaper {
namespace {

std::mutex gMutex;
int gUsers = 0;
int gBefore = 0;

}  // namespace

int Acquire() {
  std::lock_guard<std::mutex> lock(gMutex);
  if (gUsers == 0) {
    int before = 0;
    if (prctl(PR_GET_CHILD_SUBREAPER, &before, 0, 0, 0) != 0) return errno;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return errno;
    gBefore = before;
  }
  gUsers++;
  return 0;
}

void Release() {
  std::lock_guard<std::mutex> lock(gMutex);
  if (gUsers == 0) return;
  if (--gUsers == 0) prctl(PR_SET_CHILD_SUBREAPER, gBefore, 0, 0, 0);
}

}  // namespace subreaper

namespace {

Napi::Value SetChildSubreaper(const Napi::CallbackInfo& info) {
  bool on = ArgBool(info, 0, "setChildSubreaper", "on");
  int before = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, &before, 0, 0, 0) != 0 || prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0) != 0) {
    throw MakeSyscallError(info.Env(), "prctl", errno, "setting PR_SET_CHILD_SUBREAPER");
  }
  return Napi::Boolean::New(info.Env(), before != 0);
}

Napi::Value ReapChild(const Napi::CallbackInfo& info) {
  int32_t pid = ArgInt(info, 0, "reapChild", "pid");
  if (pid <= 0) ThrowBadArg(info.Env(), "reapChild", "pid", "a positive pid");
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r < 0) throw MakeSyscallError(info.Env(), "waitpid", errno, "reaping process " + std::to_string(pid));
  if (r == 0) return info.Env().Null();
  return Napi::Number::New(info.Env(), status);
}

}  // namespace

void InitSubreaper(Napi::Env env, Napi::Object exports) {
  exports.Set("setChildSubreaper", Napi::Function::New(env, SetChildSubreaper, "setChildSubreaper"));
  exports.Set("reapChild", Napi::Function::New(env, ReapChild, "reapChild"));
}

}  // namespace cowlab
