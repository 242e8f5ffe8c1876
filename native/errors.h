// Errors that cross into JS. Every native failure arrives in JS as the library's own
// CowlabError (handed to us once by src/native.ts), with a stable string `code` and, for a
// failed syscall, the errno name and the syscall, like Node's own system errors.
#pragma once
#include <napi.h>

#include <string>

namespace cowlab {

// JS: setErrorClass(CowlabError). Before it is called, plain Error objects are used.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info);

// A CowlabError with `code` and `message`.
Napi::Error MakeError(Napi::Env env, const char* code, const std::string& message);

// A CowlabError for a failed syscall: code ERR_SYSCALL, `errno` (name, e.g. "ENOMEM"),
// `errnoNumber` and `syscall`, message "<what>: <syscall>() failed: ENOMEM (Cannot ...)".
Napi::Error MakeSyscallError(Napi::Env env, const char* syscall, int err, const std::string& what,
                             const char* code = "ERR_SYSCALL");

// "ENOMEM" for ENOMEM; "E<number>" for an errno glibc has no name for.
std::string ErrnoName(int err);

// An error recorded off the JS thread (an AsyncWorker, a forked child's report) and
// turned into a CowlabError later, on the JS thread.
struct PendingError {
  std::string code;     // empty: no error; ERR_SYSCALL or a more specific code
  std::string message;
  std::string syscall;  // set for syscall failures
  int err = 0;

  bool isSet() const { return !code.empty(); }
  void set(const char* c, const std::string& msg) { code = c; message = msg; }
  void setSyscall(const char* sc, int e, const std::string& what, const char* c = "ERR_SYSCALL") {
    code = c; syscall = sc; err = e; message = what;
  }
  Napi::Error toJs(Napi::Env env) const;
};

}  // namespace cowlab
