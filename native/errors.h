// Errors that cross into JS. Every native failure arrives in JS as the library's own
// CowlabError (handed to us once by src/native.ts), with a stable string `code` and, for a
// failed syscall, the errno name and the syscall, like Node's own system errors.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

namespace cowlab {

// JS: setErrorClass(CowlabError). Before it is called, plain Error objects are used.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info);

// A CowlabError with `code` and `message`.
Napi::Error MakeError(Napi::Env env, const char* code, const std::string& message);

// A CowlabError for a failed syscall: code ERR_SYSCALL, `errno` (name, e.g. "ENOMEM"),
// `errnoNumber` and `syscall`, message "<what>: <syscall>() failed: ENOMEM (Cannot ...)", or
// without "<what>: " when `what` is empty (TypeScript adds what cowlab was doing).
Napi::Error MakeSyscallError(Napi::Env env, const char* syscall, int err, const std::string& what,
                             const char* code = "ERR_SYSCALL");

// "ENOMEM" for ENOMEM; "E<number>" for an errno glibc has no name for.
std::string ErrnoName(int err);

// One raw fact of a failure (a pid, a wait status, /proc text, the step that failed), by name.
struct Fact {
  std::string key;
  bool isText = false;
  double number = 0;
  std::string text;
};

// An error recorded off the JS thread (an AsyncWorker, a forked child's report), or built on
// it, and turned into a CowlabError by toJs. Native code states what happened; where the
// sentence a user reads needs more than that (who died and how, what to do about it),
// TypeScript words it from the facts, which arrive on the error as `facts` (an object of
// numbers and strings; src/native.ts: nativeFacts).
struct PendingError {
  std::string code;     // empty: no error; ERR_SYSCALL or a more specific code
  std::string message;
  std::string syscall;  // set for syscall failures
  int err = 0;
  std::vector<Fact> facts;

  bool isSet() const { return !code.empty(); }
  PendingError& set(const char* c, const std::string& msg) {
    code = c; message = msg;
    return *this;
  }
  PendingError& setSyscall(const char* sc, int e, const std::string& what, const char* c = "ERR_SYSCALL") {
    code = c; syscall = sc; err = e; message = what;
    return *this;
  }
  PendingError& with(const char* key, double v) {
    Fact f;
    f.key = key;
    f.number = v;
    facts.push_back(f);
    return *this;
  }
  PendingError& with(const char* key, const char* v) { return with(key, std::string(v)); }
  PendingError& with(const char* key, const std::string& v) {
    Fact f;
    f.key = key;
    f.isText = true;
    f.text = v;
    facts.push_back(f);
    return *this;
  }
  Napi::Error toJs(Napi::Env env) const;
};

}  // namespace cowlab
