// The kernel engine's process tree as a JS class: `new ProcTree(spec)` prepares the tree
// (proctree_node.h: the shared control and stack mappings, one channel per trace process); its
// methods send one command each and return a Promise (an AsyncWorker waits for the reply on a
// libuv thread, so the JS thread never blocks). One command at a time. A failure rejects with
// the tree's CowlabError and its facts; src/engines/kernel/tree.ts words it.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "child.h"
#include "errors.h"
#include "proctree.h"
#include "proctree_node.h"
#include "promise_worker.h"

namespace cowlab {
namespace {

using proctree::Header;
using proctree::Slot;
using proctree::Tree;

class ProcTreeWrap;

enum class Kind { kStart, kFork, kAccess, kProtect, kPageout, kExec, kExit, kReapByProcess, kReapByNode, kDestroy };

class TreeWorker : public PromiseWorker {
 public:
  TreeWorker(Napi::Env env, ProcTreeWrap* wrap, Napi::Object self, Kind kind, uint64_t deadlineMs);

  uint32_t slot = 0, child = 0;
  bool write = false;
  int64_t pid = 0;

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  void Finish();
  Napi::Value Result(Napi::Env env);

  ProcTreeWrap* wrap_;
  Napi::ObjectReference self_;
  Kind kind_;
  uint64_t deadlineNs_ = 0, deadlineMs_ = 0;
  bool ok_ = false;
  uint64_t ns_ = 0;
  int status_ = 0;
};

class ProcTreeWrap : public Napi::ObjectWrap<ProcTreeWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ProcTree",
                       {InstanceMethod<&ProcTreeWrap::Start>("start"),
                        InstanceMethod<&ProcTreeWrap::Fork>("fork"),
                        InstanceMethod<&ProcTreeWrap::Access>("access"),
                        InstanceMethod<&ProcTreeWrap::Protect>("protect"),
                        InstanceMethod<&ProcTreeWrap::Pageout>("pageout"),
                        InstanceMethod<&ProcTreeWrap::Exec>("exec"),
                        InstanceMethod<&ProcTreeWrap::Exit>("exit"),
                        InstanceMethod<&ProcTreeWrap::Reap>("reap"),
                        InstanceMethod<&ProcTreeWrap::Destroy>("destroy"),
                        InstanceMethod<&ProcTreeWrap::Pids>("pids")});
  }

  ProcTreeWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcTreeWrap>(info) {
    Napi::Env env = info.Env();
    const char* fn = "ProcTree";
    Napi::Object spec = ArgObject(info, 0, fn, "spec");
    Napi::Value rv = spec.Get("regions");
    if (!rv.IsArray()) ThrowBadArg(env, fn, "regions", "an array");
    Napi::Array ra = rv.As<Napi::Array>();
    if (ra.Length() > proctree::kMaxRegions) ThrowBadArg(env, fn, "regions", "at most 64 regions");
    std::vector<proctree::RegionSpec> regions;
    for (uint32_t r = 0; r < ra.Length(); r++) {
      Napi::Value v = ra.Get(r);
      if (!v.IsObject()) ThrowBadArg(env, fn, "regions", "an array of objects");
      Napi::Object o = v.As<Napi::Object>();
      proctree::RegionSpec in;
      in.pages = PropCount(env, o, fn, "pages", 1ULL << 32);
      in.backing = static_cast<uint32_t>(PropCount(env, o, fn, "backing", 3));
      in.thp = o.Get("thp").ToBoolean().Value();
      in.dontfork = o.Get("dontfork").ToBoolean().Value();
      in.wipeonfork = o.Get("wipeonfork").ToBoolean().Value();
      in.anywhere = o.Get("anywhere").ToBoolean().Value();
      if (in.pages == 0) ThrowBadArg(env, fn, "pages", "positive");
      regions.push_back(in);
    }
    Napi::Value pv = spec.Get("parents");
    if (!pv.IsTypedArray() || pv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      ThrowBadArg(env, fn, "parents", "an Int32Array");
    }
    Napi::Int32Array pa = pv.As<Napi::Int32Array>();
    Napi::Uint32Array ca = PropU32Array(env, spec, fn, "capacity");
    const size_t n = pa.ElementLength();
    if (n == 0 || n > proctree::kMaxSlots) ThrowBadArg(env, fn, "parents", "1 to 256 slots");
    if (ca.ElementLength() != n) ThrowBadArg(env, fn, "capacity", "one entry per slot");
    std::vector<int32_t> parents(n);
    std::vector<uint32_t> capacity(n);
    for (size_t i = 0; i < n; i++) {
      parents[i] = pa[i];
      capacity[i] = ca[i];
      bool okParent = i == 0 ? pa[i] == -1 : (pa[i] >= 0 && static_cast<size_t>(pa[i]) < i);
      if (!okParent) ThrowBadArg(env, fn, "parents", "-1 for slot 0 and an earlier slot for every other");
    }
    Napi::Value ev = spec.Get("execPath");
    if (!ev.IsString()) ThrowBadArg(env, fn, "execPath", "a string");
    std::string execPath = ev.As<Napi::String>().Utf8Value();
    if (execPath.empty() || execPath.size() >= proctree::kPathMax) ThrowBadArg(env, fn, "execPath", "a path");
    Napi::Value shedV = spec.Get("shedNodeMemory");
    bool shed = shedV.IsUndefined() ? true : shedV.ToBoolean().Value();
    bool p0InNode = spec.Get("p0InNode").ToBoolean().Value();
    tree_ = std::make_unique<Tree>();
    if (!tree_->Create(regions, parents, capacity, execPath, shed, p0InNode)) {
      tree_->Teardown(0);
      throw tree_->error.toJs(env);
    }
  }

  Tree* tree() { return tree_.get(); }
  void SetBusy(bool b) { busy_ = b; }

 private:
  void CheckUsable(Napi::Env env, bool needStarted = true) {
    if (busy_) throw MakeError(env, "ERR_BUSY", "the process tree is running another command");
    if (tree_->tornDown()) throw MakeError(env, "ERR_RELEASED", "the process tree was torn down");
    if (needStarted && !tree_->started()) throw MakeError(env, "ERR_INVALID_ARGUMENT", "ProcTree: start() first");
  }

  uint32_t LiveSlot(const Napi::CallbackInfo& info, size_t i, const char* fn) {
    uint64_t s = ArgCount(info, i, fn, "slot", tree_->slots() - 1);
    Slot* sl = tree_->slot(static_cast<uint32_t>(s));
    if (sl->pid <= 0 || tree_->gone(static_cast<uint32_t>(s))) ThrowBadArg(info.Env(), fn, "slot", "a live process");
    return static_cast<uint32_t>(s);
  }

  // Copies a Uint32Array page list into the (idle) slot's command area.
  static void SetPages(const Napi::CallbackInfo& info, size_t i, const char* fn, Slot* sl) {
    if (info.Length() <= i || !info[i].IsTypedArray() ||
        info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      ThrowBadArg(info.Env(), fn, "pages", "a Uint32Array");
    }
    Napi::Uint32Array pages = info[i].As<Napi::Uint32Array>();
    if (pages.ElementLength() > sl->capacity) ThrowBadArg(info.Env(), fn, "pages", "within the slot's capacity");
    sl->count = pages.ElementLength();
    if (sl->count > 0) memcpy(sl->pages(), pages.Data(), sl->count * 4);
  }

  // A live process that still runs the command loop (has not exec'd).
  uint32_t RunningSlot(const Napi::CallbackInfo& info, size_t i, const char* fn) {
    uint32_t s = LiveSlot(info, i, fn);
    if (tree_->execd(s)) ThrowBadArg(info.Env(), fn, "slot", "a process that has not exec'd");
    return s;
  }

  TreeWorker* Worker(const Napi::CallbackInfo& info, Kind kind, uint64_t deadlineMs) {
    return new TreeWorker(info.Env(), this, info.This().As<Napi::Object>(), kind, deadlineMs);
  }

  Napi::Value Queue(TreeWorker* w) {
    busy_ = true;
    return PromiseWorker::Start(w);
  }

  // start(deadlineMs) -> { pid, addresses: bigint[], mapNs }
  Napi::Value Start(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env(), false);
    if (tree_->started()) throw MakeError(info.Env(), "ERR_INVALID_ARGUMENT", "ProcTree: already started");
    uint64_t d = ArgCount(info, 0, "start", "deadlineMs");
    return Queue(Worker(info, Kind::kStart, d));
  }

  // fork(slot, childSlot, deadlineMs) -> { pid, forkNs, faults }
  Napi::Value Fork(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env());
    uint32_t s = RunningSlot(info, 0, "fork");
    uint64_t c = ArgCount(info, 1, "fork", "childSlot", tree_->slots() - 1);
    if (tree_->header()->parent[c] != static_cast<int32_t>(s) || tree_->slot(static_cast<uint32_t>(c))->pid != 0) {
      ThrowBadArg(info.Env(), "fork", "childSlot", "an unused slot whose parent is slot");
    }
    uint64_t d = ArgCount(info, 2, "fork", "deadlineMs");
    auto* w = Worker(info, Kind::kFork, d);
    w->slot = s;
    w->child = static_cast<uint32_t>(c);
    return Queue(w);
  }

  // access(slot, write, region, pages: Uint32Array, tag: bigint, deadlineMs, paceNs, viaPread)
  //   -> { latencyNs: Float64Array, startNs: Float64Array, faults: Uint32Array,
  //        flags: Uint8Array, values: BigUint64Array | null, opFaults, opMajorFaults, opNs }
  Napi::Value Access(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env());
    const char* fn = "access";
    uint32_t s = RunningSlot(info, 0, fn);
    bool write = ArgBool(info, 1, fn, "write");
    uint64_t r = ArgCount(info, 2, fn, "region", tree_->header()->regions - 1);
    uint64_t tag = ArgAddress(info, 4, fn, "tag");
    uint64_t d = ArgCount(info, 5, fn, "deadlineMs");
    uint64_t pace = ArgCount(info, 6, fn, "paceNs");
    bool viaPread = ArgBool(info, 7, fn, "viaPread");
    if (viaPread && !write) ThrowBadArg(info.Env(), fn, "viaPread", "false for a read");
    Slot* sl = tree_->slot(s);
    SetPages(info, 3, fn, sl);
    sl->region = static_cast<uint32_t>(r);
    sl->tag = tag;
    sl->paceNs = pace;
    sl->via = viaPread ? proctree::kViaPread : proctree::kViaStore;
    auto* w = Worker(info, Kind::kAccess, d);
    w->slot = s;
    w->write = write;
    return Queue(w);
  }

  // protect(slot, region, prot, pages: Uint32Array (empty: whole region), deadlineMs) -> { opNs, opFaults }
  Napi::Value Protect(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env());
    return RangeCommand(info, "protect", Kind::kProtect, ArgInt(info, 2, "protect", "prot"), 3);
  }

  // pageout(slot, region, pages: Uint32Array (empty: whole region), deadlineMs) -> { opNs, opFaults }
  Napi::Value Pageout(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env());
    if (RunningSlot(info, 0, "pageout") == 0 && tree_->p0InNode()) {
      ThrowBadArg(info.Env(), "pageout", "slot", "not p0 when p0 is the Node process");
    }
    return RangeCommand(info, "pageout", Kind::kPageout, 0, 2);
  }

  // A command on a list of pages of one region (slot and region first, the pages at `pagesAt`,
  // the deadline after them), with `arg` for the process loop.
  Napi::Value RangeCommand(const Napi::CallbackInfo& info, const char* fn, Kind kind, int64_t arg, size_t pagesAt) {
    uint32_t s = RunningSlot(info, 0, fn);
    uint64_t r = ArgCount(info, 1, fn, "region", tree_->header()->regions - 1);
    uint64_t d = ArgCount(info, pagesAt + 1, fn, "deadlineMs");
    Slot* sl = tree_->slot(s);
    SetPages(info, pagesAt, fn, sl);
    sl->region = static_cast<uint32_t>(r);
    sl->arg = arg;
    auto* w = Worker(info, kind, d);
    w->slot = s;
    return Queue(w);
  }

  // exec(slot, deadlineMs) -> { opNs }
  Napi::Value Exec(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env());
    uint32_t s = RunningSlot(info, 0, "exec");
    if (s == 0 && tree_->p0InNode()) ThrowBadArg(info.Env(), "exec", "slot", "not p0 when p0 is the Node process");
    uint64_t d = ArgCount(info, 1, "exec", "deadlineMs");
    auto* w = Worker(info, Kind::kExec, d);
    w->slot = s;
    return Queue(w);
  }

  // exit(slot, deadlineMs) -> { opNs, pid }: the process has exited (not yet reaped).
  Napi::Value Exit(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env());
    uint32_t s = LiveSlot(info, 0, "exit");
    if (s == 0 && tree_->p0InNode()) ThrowBadArg(info.Env(), "exit", "slot", "not p0 when p0 is the Node process");
    uint64_t d = ArgCount(info, 1, "exit", "deadlineMs");
    auto* w = Worker(info, Kind::kExit, d);
    w->slot = s;
    return Queue(w);
  }

  // reap(reaperSlot, pid, deadlineMs) -> { status } (waitpid's). reaperSlot -1: Node reaps (the
  // process is Node's child: p0, or an orphan adopted by the subreaper).
  Napi::Value Reap(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env());
    int32_t reaper = ArgInt(info, 0, "reap", "reaperSlot");
    int32_t pid = ArgInt(info, 1, "reap", "pid");
    uint64_t d = ArgCount(info, 2, "reap", "deadlineMs");
    if (pid <= 0) ThrowBadArg(info.Env(), "reap", "pid", "a positive pid");
    Kind k = Kind::kReapByNode;
    if (reaper >= 0 && !(reaper == 0 && tree_->p0InNode())) {  // p0 in Node: Node reaps
      uint32_t s = RunningSlot(info, 0, "reap");
      tree_->slot(s)->arg = pid;
      k = Kind::kReapByProcess;
    }
    auto* w = Worker(info, k, d);
    w->slot = reaper >= 0 ? static_cast<uint32_t>(reaper) : 0;
    w->pid = pid;
    return Queue(w);
  }

  // destroy(deadlineMs) -> undefined: kill and reap every trace process, release everything.
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    if (busy_) throw MakeError(info.Env(), "ERR_BUSY", "the process tree is running another command");
    uint64_t d = ArgCount(info, 0, "destroy", "deadlineMs");
    return Queue(Worker(info, Kind::kDestroy, d));
  }

  // pids() -> Int32Array: the pid of each slot's process (0: not started yet).
  Napi::Value Pids(const Napi::CallbackInfo& info) {
    Napi::Int32Array out = Napi::Int32Array::New(info.Env(), tree_->slots());
    if (!tree_->tornDown()) {
      for (uint32_t i = 0; i < tree_->slots(); i++) out[i] = static_cast<int32_t>(tree_->slot(i)->pid);
    }
    return out;
  }

  std::unique_ptr<Tree> tree_;
  bool busy_ = false;
};

TreeWorker::TreeWorker(Napi::Env env, ProcTreeWrap* wrap, Napi::Object self, Kind kind, uint64_t deadlineMs)
    : PromiseWorker(env, "cowlab.procTree"),
      wrap_(wrap),
      self_(Napi::Persistent(self)),
      kind_(kind),
      deadlineMs_(deadlineMs) {}

void TreeWorker::Execute() {
  Tree* t = wrap_->tree();
  deadlineNs_ = child::NowNs() + deadlineMs_ * 1000000ULL;  // counted from when the work starts
  switch (kind_) {
    case Kind::kStart: ok_ = t->Start(deadlineNs_); break;
    case Kind::kFork: ok_ = t->Fork(slot, child, deadlineNs_); break;
    case Kind::kAccess: ok_ = t->Access(slot, write, deadlineNs_); break;
    case Kind::kProtect: ok_ = t->Protect(slot, deadlineNs_); break;
    case Kind::kPageout: ok_ = t->Pageout(slot, deadlineNs_); break;
    case Kind::kExec: ok_ = t->Exec(slot, deadlineNs_, &ns_); break;
    case Kind::kExit: ok_ = t->Exit(slot, deadlineNs_, &ns_); break;
    case Kind::kReapByProcess:
      ok_ = t->Reap(slot, deadlineNs_);
      if (ok_) status_ = static_cast<int>(t->slot(slot)->waitStatus);
      break;
    case Kind::kReapByNode: ok_ = t->ReapByNode(static_cast<pid_t>(pid), deadlineNs_, &status_); break;
    case Kind::kDestroy: ok_ = t->Teardown(deadlineMs_); break;
  }
  if (ok_ && (kind_ == Kind::kReapByProcess || kind_ == Kind::kReapByNode)) t->MarkReaped(static_cast<pid_t>(pid));
}

void TreeWorker::Finish() {
  wrap_->SetBusy(false);
  self_.Reset();
}

Napi::Value TreeWorker::Result(Napi::Env env) {
  Tree* t = wrap_->tree();
  Napi::Object out = Napi::Object::New(env);
  switch (kind_) {
    case Kind::kStart: {
      Header* h = t->header();
      Napi::Array addrs = Napi::Array::New(env, h->regions);
      for (uint32_t r = 0; r < h->regions; r++) addrs.Set(r, Napi::BigInt::New(env, h->region[r].address));
      out.Set("pid", static_cast<double>(t->slot(0)->pid));
      out.Set("addresses", addrs);
      out.Set("mapNs", static_cast<double>(t->slot(0)->timeNs));
      out.Set("timerOverheadNs", static_cast<double>(t->slot(0)->timerOverheadNs));
      break;
    }
    case Kind::kFork: {
      Slot* s = t->slot(slot);
      out.Set("pid", static_cast<double>(s->childPid));
      out.Set("forkNs", static_cast<double>(s->timeNs));
      out.Set("faults", static_cast<double>(s->faults));
      out.Set("forkedAtNs", static_cast<double>(s->endNs));
      out.Set("timerOverheadNs", static_cast<double>(t->slot(child)->timerOverheadNs));
      break;
    }
    case Kind::kAccess: {
      Slot* s = t->slot(slot);
      const size_t n = s->count;
      Napi::Float64Array lat = Napi::Float64Array::New(env, n);
      Napi::Float64Array starts = Napi::Float64Array::New(env, n);
      Napi::Uint32Array faults = Napi::Uint32Array::New(env, n);
      Napi::Uint8Array flags = Napi::Uint8Array::New(env, n);
      for (size_t i = 0; i < n; i++) {
        lat[i] = static_cast<double>(s->lat()[i]);
        starts[i] = static_cast<double>(s->starts()[i]);
      }
      if (n > 0) {
        memcpy(faults.Data(), s->faultCounts(), n * 4);
        memcpy(flags.Data(), s->flags(), n);
      }
      out.Set("latencyNs", lat);
      out.Set("startNs", starts);
      out.Set("faults", faults);
      out.Set("flags", flags);
      if (write) {
        out.Set("values", env.Null());
      } else {
        Napi::ArrayBuffer vb = Napi::ArrayBuffer::New(env, n * 8);
        if (n > 0) memcpy(vb.Data(), s->values(), n * 8);
        napi_value arr;
        napi_create_typedarray(env, napi_biguint64_array, n, vb, 0, &arr);
        out.Set("values", Napi::Value(env, arr));
      }
      out.Set("opFaults", static_cast<double>(s->faults));
      out.Set("opMajorFaults", static_cast<double>(s->majorFaults));
      out.Set("opNs", static_cast<double>(s->timeNs));
      break;
    }
    case Kind::kProtect:
    case Kind::kPageout: {
      Slot* s = t->slot(slot);
      out.Set("opNs", static_cast<double>(s->timeNs));
      out.Set("opFaults", static_cast<double>(s->faults));
      break;
    }
    case Kind::kExec:
    case Kind::kExit:
      out.Set("opNs", static_cast<double>(ns_));
      break;
    case Kind::kReapByProcess:
    case Kind::kReapByNode:
      out.Set("status", status_);  // the waitpid status, decoded in TypeScript
      break;
    case Kind::kDestroy:
      return env.Undefined();
  }
  return out;
}

void TreeWorker::OnOK() {
  Napi::Env env = Env();
  Tree* t = wrap_->tree();
  if (!ok_) {
    Napi::Error e = t->error.toJs(env);
    t->error = PendingError();
    Finish();
    deferred_.Reject(e.Value());
    return;
  }
  Napi::Value v = Result(env);
  Finish();
  deferred_.Resolve(v);
}

void TreeWorker::OnError(const Napi::Error& e) {
  Finish();
  PromiseWorker::OnError(e);
}

}  // namespace

void InitProcTree(Napi::Env env, Napi::Object exports) {
  exports.Set("ProcTree", ProcTreeWrap::Define(env));
}

}  // namespace cowlab
