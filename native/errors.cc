#include "errors.h"

#include <cstring>

#include "addon.h"

namespace cowlab {

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsFunction()) {
    throw Napi::TypeError::New(info.Env(), "setErrorClass(cls) needs a constructor");
  }
  AddonData* data = GetAddonData(info.Env());
  data->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? std::string(name) : "E" + std::to_string(err);
}

static Napi::Error Build(Napi::Env env, const char* code, const std::string& message,
                         const char* syscall, int err) {
  AddonData* data = GetAddonData(env);
  Napi::Object details = Napi::Object::New(env);
  if (syscall != nullptr) {
    details.Set("syscall", syscall);
    details.Set("errno", ErrnoName(err));
    details.Set("errnoNumber", err);
  }
  if (data->errorClass.IsEmpty()) {
    Napi::Error e = Napi::Error::New(env, message);
    e.Set("code", code);
    return e;
  }
  Napi::Object obj = data->errorClass.New({Napi::String::New(env, code),
                                           Napi::String::New(env, message), details});
  return Napi::Error(env, obj);
}

Napi::Error MakeError(Napi::Env env, const char* code, const std::string& message) {
  return Build(env, code, message, nullptr, 0);
}

Napi::Error MakeSyscallError(Napi::Env env, const char* syscall, int err, const std::string& what,
                             const char* code) {
  std::string msg = std::string(syscall) + "() failed: " + ErrnoName(err) + " (" + std::strerror(err) + ")";
  if (!what.empty()) msg = what + ": " + msg;
  return Build(env, code, msg, syscall, err);
}

Napi::Error PendingError::toJs(Napi::Env env) const {
  Napi::Error e = syscall.empty() ? MakeError(env, code.c_str(), message)
                                  : MakeSyscallError(env, syscall.c_str(), err, message, code.c_str());
  if (!facts.empty()) {
    Napi::Object o = Napi::Object::New(env);
    for (const Fact& f : facts) {
      if (f.isText) o.Set(f.key, f.text);
      else o.Set(f.key, f.number);
    }
    e.Set("facts", o);
  }
  return e;
}

}  // namespace cowlab
