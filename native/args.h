// Argument readers for the JS-facing functions. The TypeScript layer validates user input and
// names the option at fault; these checks only catch a caller that bypassed it, so their
// messages name the native function and argument.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

#include "errors.h"

namespace cowlab {

[[noreturn]] inline void ThrowBadArg(Napi::Env env, const char* fn, const char* arg,
                                     const char* want) {
  throw MakeError(env, "ERR_INVALID_ARGUMENT",
                  std::string(fn) + ": argument '" + arg + "' must be " + want);
}

inline uint64_t ArgAddress(const Napi::CallbackInfo& info, size_t i, const char* fn,
                           const char* arg) {
  if (i >= info.Length() || !info[i].IsBigInt()) ThrowBadArg(info.Env(), fn, arg, "a bigint address");
  bool lossless = true;
  uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) ThrowBadArg(info.Env(), fn, arg, "a 64-bit unsigned address");
  return v;
}

inline double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  if (i >= info.Length() || !info[i].IsNumber()) ThrowBadArg(info.Env(), fn, arg, "a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

// A non-negative integer that fits in `max` (default: 2^53, the exact range of a JS number).
inline uint64_t ArgCount(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg,
                         uint64_t max = (1ULL << 53)) {
  double d = ArgNumber(info, i, fn, arg);
  if (!(d >= 0) || d > static_cast<double>(max) || d != static_cast<double>(static_cast<uint64_t>(d))) {
    ThrowBadArg(info.Env(), fn, arg, "a non-negative integer in range");
  }
  return static_cast<uint64_t>(d);
}

inline int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  double d = ArgNumber(info, i, fn, arg);
  if (d != static_cast<double>(static_cast<int32_t>(d))) ThrowBadArg(info.Env(), fn, arg, "a 32-bit integer");
  return static_cast<int32_t>(d);
}

inline bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  if (i >= info.Length() || !info[i].IsBoolean()) ThrowBadArg(info.Env(), fn, arg, "a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

inline Napi::Object ArgObject(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  if (i >= info.Length() || !info[i].IsObject()) ThrowBadArg(info.Env(), fn, arg, "an object");
  return info[i].As<Napi::Object>();
}

// Reads property `key` of an options object as the given kind; same rules as above.
inline Napi::Value Prop(Napi::Object o, const char* key) { return o.Get(key); }

inline uint64_t PropCount(Napi::Env env, Napi::Object o, const char* fn, const char* key,
                          uint64_t max = (1ULL << 53)) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) ThrowBadArg(env, fn, key, "a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > static_cast<double>(max) || d != static_cast<double>(static_cast<uint64_t>(d))) {
    ThrowBadArg(env, fn, key, "a non-negative integer in range");
  }
  return static_cast<uint64_t>(d);
}

inline uint64_t PropAddress(Napi::Env env, Napi::Object o, const char* fn, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsBigInt()) ThrowBadArg(env, fn, key, "a bigint");
  bool lossless = true;
  uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) ThrowBadArg(env, fn, key, "a 64-bit unsigned bigint");
  return r;
}

inline Napi::Uint32Array PropU32Array(Napi::Env env, Napi::Object o, const char* fn, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    ThrowBadArg(env, fn, key, "a Uint32Array");
  }
  return v.As<Napi::Uint32Array>();
}

}  // namespace cowlab
