// Module-wide state and the registration hooks of each mechanism file.
#pragma once
#include <napi.h>

namespace cowlab {

// Per-environment data (one per Node environment, so worker threads each get their own).
struct AddonData {
  Napi::FunctionReference errorClass;
};

AddonData* GetAddonData(Napi::Env env);

// Each mechanism file adds its functions to `exports`. Keep one line per file in addon.cc.
void InitMemory(Napi::Env env, Napi::Object exports);
void InitPagemap(Napi::Env env, Napi::Object exports);
void InitProcTree(Napi::Env env, Napi::Object exports);
void InitSubreaper(Napi::Env env, Napi::Object exports);
void InitChildren(Napi::Env env, Napi::Object exports);
void InitSpawnProbe(Napi::Env env, Napi::Object exports);
void InitPinProbe(Napi::Env env, Napi::Object exports);
void InitEagerCopy(Napi::Env env, Napi::Object exports);
void InitRegion(Napi::Env env, Napi::Object exports);
void InitFiemap(Napi::Env env, Napi::Object exports);
void InitTrackSignal(Napi::Env env, Napi::Object exports);
void InitTrackUffd(Napi::Env env, Napi::Object exports);
void InitTrackSoftDirty(Napi::Env env, Napi::Object exports);

}  // namespace cowlab
