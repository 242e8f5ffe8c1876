// The cowlab addon: registers each mechanism. No logic lives here.
#include "addon.h"

#include "errors.h"

namespace cowlab {

AddonData* GetAddonData(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  InitMemory(env, exports);
  InitPagemap(env, exports);
  InitProcTree(env, exports);
  InitSubreaper(env, exports);
  InitChildren(env, exports);
  InitSpawnProbe(env, exports);
  InitPinProbe(env, exports);
  InitEagerCopy(env, exports);
  InitRegion(env, exports);
  InitFiemap(env, exports);
  InitTrackSignal(env, exports);
  InitTrackUffd(env, exports);
  InitTrackSoftDirty(env, exports);
  return exports;
}

}  // namespace cowlab

// NODE_API_MODULE pastes its second argument into an identifier, so it needs a plain name.
static Napi::Object InitCowlab(Napi::Env env, Napi::Object exports) { return cowlab::Init(env, exports); }
NODE_API_MODULE(cowlab, InitCowlab)
