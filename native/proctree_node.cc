// The process tree, Node side (see proctree_node.h).
#include "proctree_node.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "child.h"
#include "children.h"
#include "elf_text.h"
#include "page.h"
#include "subreaper.h"
#include "wait.h"

namespace cowlab {
namespace proctree {
namespace {

// Where a slot's arrays start in its block (64-byte aligned), and the block's size.
struct SlotLayout {
  size_t pages, lat, start, faults, flags, values, bytes;
  SlotLayout(size_t cap, size_t ps) {
    size_t a = RoundUp(sizeof(Slot), 64);
    pages = a;
    a += RoundUp(cap * 4, 64);
    lat = a;
    a += RoundUp(cap * 8, 64);
    start = a;
    a += RoundUp(cap * 8, 64);
    faults = a;
    a += RoundUp(cap * 4, 64);
    flags = a;
    a += RoundUp(cap, 64);
    values = a;
    a += RoundUp(cap * 8, 64);
    bytes = RoundUp(a, ps);
  }
};

// The syscall a command was in when it failed, by its stage.
const char* StageSyscall(uint32_t stage) {
  switch (stage) {
    case kStageReserve: return "mmap";
    case kStageMemfd: return "memfd_create";
    case kStageFtruncate: return "ftruncate";
    case kStageMmap: return "mmap";
    case kStageMadvise: return "madvise";
    case kStageClone: return "clone";
    case kStageMprotect: return "mprotect";
    case kStageExecDup: return "dup2";
    case kStageExecve: return "execve";
    case kStageWaitpid: return "waitpid";
    case kStagePwrite: return "pwrite";
    case kStagePread: return "pread";
    default: return "command";
  }
}

// The command's name in failure facts.
const char* OpName(uint32_t op) {
  switch (op) {
    case kOpMap: return "map";
    case kOpFork: return "fork";
    case kOpWrite: return "write";
    case kOpRead: return "read";
    case kOpProtect: return "protect";
    case kOpPageout: return "pageout";
    case kOpExec: return "exec";
    case kOpExit: return "exit";
    case kOpReap: return "reap";
    default: return "start";
  }
}

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// /proc/<pid>/stat as text ("" when it cannot be read): a dead trace process's wait status is
// there while it is a zombie, and only this thread can read it before the teardown reaps it.
std::string StatText(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  ssize_t n = child::ReadFileInto(path, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace

Tree::~Tree() {
  if (!tornDown_) Teardown(200);
}

bool Tree::Create(const std::vector<RegionSpec>& regions, const std::vector<int32_t>& parents,
                  const std::vector<uint32_t>& capacity, const std::string& execPath, bool shed,
                  bool p0InNode) {
  const size_t ps = PageSize();
  slots_ = static_cast<uint32_t>(parents.size());
  size_t headerBytes = RoundUp(sizeof(Header), ps);
  controlBytes_ = headerBytes;
  for (uint32_t i = 0; i < slots_; i++) controlBytes_ += SlotLayout(capacity[i], ps).bytes;
  void* c = mmap(nullptr, controlBytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (c == MAP_FAILED) return SyscallFailed(errno, "mmap", "mapping the control area");
  control_ = static_cast<uint8_t*>(c);
  memset(control_, 0, controlBytes_);
  stacksBytes_ = slots_ * (kStackBytes + ps);
  void* st = mmap(nullptr, stacksBytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (st == MAP_FAILED) return SyscallFailed(errno, "mmap", "mapping the process stacks");
  stacks_ = static_cast<uint8_t*>(st);
  for (uint32_t i = 0; i < slots_; i++) {  // a guard page below each stack
    if (mprotect(stacks_ + i * (kStackBytes + ps), ps, PROT_NONE) != 0) {
      return SyscallFailed(errno, "mprotect", "placing the stack guard pages");
    }
  }
  Header* h = header();
  h->pageSize = ps;
  h->controlBytes = controlBytes_;
  h->stacks = stacks_;
  h->slots = slots_;
  h->shedNodeMemory = shed && !p0InNode ? 1 : 0;
  h->p0InNode = p0InNode ? 1 : 0;
  p0InNode_ = p0InNode;
  h->readFd = -1;
  h->regions = static_cast<uint32_t>(regions.size());
  for (size_t r = 0; r < regions.size(); r++) {
    h->region[r] = {regions[r].pages, regions[r].backing, regions[r].thp, regions[r].dontfork,
                    regions[r].wipeonfork, regions[r].anywhere, 0, 0};
  }
  snprintf(h->execPath, sizeof h->execPath, "%s", execPath.c_str());
  const char* slash = strrchr(h->execPath, '/');
  snprintf(h->execArg0, sizeof h->execArg0, "%s", slash != nullptr ? slash + 1 : h->execPath);
  snprintf(h->devNull, sizeof h->devNull, "/dev/null");
  size_t off = headerBytes;
  for (uint32_t i = 0; i < slots_; i++) {
    h->parent[i] = parents[i];
    h->slotOffset[i] = off;
    const SlotLayout l(capacity[i], ps);
    Slot* s = SlotAt(h, i);
    s->index = i;
    s->capacity = capacity[i];
    s->blockBytes = l.bytes;
    s->base = control_;
    s->pagesOff = off + l.pages;
    s->latOff = off + l.lat;
    s->startOff = off + l.start;
    s->faultOff = off + l.faults;
    s->flagsOff = off + l.flags;
    s->valueOff = off + l.values;
    off += l.bytes;
  }
  cmdWrite_.assign(slots_, -1);
  replyRead_.assign(slots_, -1);
  execd_.assign(slots_, false);
  gone_.assign(slots_, false);
  childEnds_.assign(slots_, true);
  for (uint32_t i = 0; i < slots_; i++) h->cmdRead[i] = h->replyWrite[i] = -1;
  // The source of `via pread` writes: 8 bytes per access of the largest page list.
  uint64_t most = 0;
  for (uint32_t c : capacity) most = c > most ? c : most;
  h->readFd = memfd_create("cowlab-read-source", MFD_CLOEXEC);
  if (h->readFd < 0) return SyscallFailed(errno, "memfd_create", "creating the source of pread writes");
  if (ftruncate(h->readFd, static_cast<off_t>(most * 8)) != 0) return SyscallFailed(errno, "ftruncate", "sizing the source of pread writes");
  for (uint32_t i = 0; i < slots_; i++) {
    int cmd[2], rep[2];
    if (pipe2(cmd, O_CLOEXEC) != 0) return SyscallFailed(errno, "pipe2", "creating a command pipe");
    if (pipe2(rep, O_CLOEXEC) != 0) {
      int e = errno;
      close(cmd[0]);
      close(cmd[1]);
      return SyscallFailed(e, "pipe2", "creating a reply pipe");
    }
    h->cmdRead[i] = cmd[0];
    cmdWrite_[i] = cmd[1];
    replyRead_[i] = rep[0];
    h->replyWrite[i] = rep[1];
  }
  elf::LoadedText text = elf::CollectText(reinterpret_cast<uintptr_t>(&ProcessEntry),
                                          reinterpret_cast<uintptr_t>(&clone), h->text, kMaxTextRanges);
  h->textRanges = static_cast<uint32_t>(text.ranges);
  if (!text.addonBindsNow) {
    // A lazily bound call in a forked process runs the dynamic linker's resolver, which reads
    // Node's malloc heap and writes the GOT: neither is allowed (nor present) there.
    error.set("ERR_ADDON_LOAD", "the cowlab addon was linked with lazy binding").with("cause", "lazy-binding");
    return false;
  }
  return true;
}

bool Tree::Start(uint64_t deadlineNs) {
  int e = subreaper::Acquire();
  if (e != 0) {
    error.setSyscall("prctl", e, "becoming the child subreaper of the trace processes");
    return false;
  }
  subreaper_ = true;
  started_ = true;
  Slot* s0 = slot(0);
  if (p0InNode_) {
    // p0 is this process: it maps the regions here, on this worker thread.
    s0->pid = getpid();
    s0->timerOverheadNs = child::TimerOverheadNs();
    CloseChildEnd(0);
    return Command(0, kOpMap, deadlineNs);
  }
  pid_t pid = clone(ProcessEntry, StackTop(header(), 0), SIGCHLD, s0);
  if (pid < 0) {
    error.setSyscall("clone", errno, "forking p0 from the Node process");
    return false;
  }
  setpgid(pid, pid);  // p0 does the same; whichever runs first makes the group
  JoinGroup(pid);
  s0->pid = pid;
  for (uint32_t i = 0; i < slots_; i++) CloseChildEnd(i);
  if (!ExpectReady(0, deadlineNs)) return false;
  return Command(0, kOpMap, deadlineNs);
}

// The tree's process group is now `pgid`: killAllChildren (Ctrl-C) kills the whole tree.
void Tree::JoinGroup(pid_t pgid) {
  if (pgid == pgid_) return;
  if (pgid_ > 0) children::UnregisterGroup(pgid_);  // p0InNode: that group is empty
  pgid_ = pgid;
  children::RegisterGroup(pgid_);
}

bool Tree::Fork(uint32_t parent, uint32_t childSlot, uint64_t deadlineNs) {
  Slot* s = slot(parent);
  s->arg = childSlot;
  const bool fromNode = p0InNode_ && parent == 0;
  // A child of Node joins the tree's group while any member is left (zombies count); once the
  // group is empty it starts a new one. The child and Node both call setpgid.
  if (fromNode) header()->nodeGroup = pgid_ > 0 && kill(-pgid_, 0) == 0 ? pgid_ : 0;
  if (!Command(parent, kOpFork, deadlineNs)) return false;
  if (fromNode) {
    const pid_t pid = static_cast<pid_t>(slot(childSlot)->pid);
    const pid_t group = header()->nodeGroup;
    if (group == 0 || setpgid(pid, group) != 0) setpgid(pid, pid);
    const pid_t now = getpgid(pid);
    JoinGroup(now > 0 ? now : pid);
    // The child's subtree talks through the child from now on.
    for (uint32_t i = 0; i < slots_; i++) {
      if (InSubtree(header(), static_cast<int32_t>(i), static_cast<int32_t>(childSlot))) CloseChildEnd(i);
    }
  }
  return ExpectReady(childSlot, deadlineNs);
}

bool Tree::Access(uint32_t i, bool write, uint64_t deadlineNs) {
  return Command(i, write ? kOpWrite : kOpRead, deadlineNs);
}

bool Tree::Protect(uint32_t i, uint64_t deadlineNs) { return Command(i, kOpProtect, deadlineNs); }

bool Tree::Pageout(uint32_t i, uint64_t deadlineNs) { return Command(i, kOpPageout, deadlineNs); }

bool Tree::Reap(uint32_t i, uint64_t deadlineNs) { return Command(i, kOpReap, deadlineNs); }

bool Tree::Exec(uint32_t i, uint64_t deadlineNs, uint64_t* ns) {
  Slot* s = slot(i);
  s->op = kOpExec;
  uint64_t t0 = child::NowNs();
  if (!child::WriteByte(cmdWrite_[i], 'C')) return Died(i, "exec");
  char c = 0;
  wait::Result w = wait::WaitByte(replyRead_[i], deadlineNs, &c);
  *ns = child::NowNs() - t0;
  if (w == wait::kTimedOut) return Deadline(i, "exec");
  if (w == wait::kFailed) return PollFailed();
  if (w == wait::kReady && c == kReplyFailed) return Refused(i);
  if (w == wait::kReady) return Protocol(i, c);
  // EOF: the process image was replaced, or the process died (then it has exited).
  if (wait::WaitExited(static_cast<pid_t>(s->pid), 0) == wait::kReady) return Died(i, "exec");
  execd_[i] = true;
  CloseFd(&replyRead_[i]);
  return true;
}

bool Tree::Exit(uint32_t i, uint64_t deadlineNs, uint64_t* ns) {
  Slot* s = slot(i);
  const pid_t pid = static_cast<pid_t>(s->pid);
  uint64_t t0 = child::NowNs();
  if (execd_[i]) {
    CloseFd(&cmdWrite_[i]);
  } else {
    s->op = kOpExit;
    child::WriteByte(cmdWrite_[i], 'C');  // a dead process is caught by WaitExited below
  }
  wait::Result w = wait::WaitExited(pid, deadlineNs);
  *ns = child::NowNs() - t0;
  if (w == wait::kTimedOut) return Deadline(i, "exit");
  if (w == wait::kFailed) return PollFailed();
  gone_[i] = true;
  CloseFd(&cmdWrite_[i]);
  CloseFd(&replyRead_[i]);
  return true;
}

// ECHILD is an error: not ours. The reap runs under the children registry's lock, which drops
// the group's entry if this reap left the group empty (a trace process reaped by its parent
// leaves the parent in the group).
bool Tree::ReapByNode(pid_t pid, uint64_t deadlineNs, int* status) {
  for (;;) {
    pid_t r = children::ReapInGroup(pgid_, pid, status);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) {
      error.setSyscall("waitpid", errno, "reaping trace process " + std::to_string(pid) + " in Node");
      return false;
    }
    if (child::NowNs() >= deadlineNs) {
      PendingError e;
      e.set("ERR_CHILD_DEADLINE", "a trace process was not reapable in time").with("cause", "reap-deadline").with("pid", pid);
      return EndTree(e);
    }
    child::SleepMs(1);
  }
}

bool Tree::Teardown(uint64_t budgetMs) {
  if (tornDown_) return true;
  tornDown_ = true;
  bool ok = true;
  for (int& fd : cmdWrite_) CloseFd(&fd);  // idle processes exit at EOF anyway
  if (pgid_ > 0) {
    children::UnregisterGroup(pgid_);  // before the reaps below empty the group
    kill(-pgid_, SIGKILL);
    for (uint32_t i = 0; i < slots_; i++) {  // in case p0 had not made its group yet
      pid_t pid = static_cast<pid_t>(slot(i)->pid);
      if (p0InNode_ && i == 0) continue;  // p0 is Node
      if (pid > 0 && !reaped(i)) kill(pid, SIGKILL);
    }
    uint64_t deadline = child::NowNs() + budgetMs * 1000000ULL;
    for (;;) {
      siginfo_t si;
      memset(&si, 0, sizeof si);
      int r = waitid(P_PGID, static_cast<id_t>(pgid_), &si, WEXITED | WNOHANG);
      if (r == 0 && si.si_pid != 0) continue;  // reaped one; maybe more are ready
      if (kill(-pgid_, 0) != 0 && errno == ESRCH) break;  // the group is empty
      if (child::NowNs() >= deadline) {
        ok = false;
        break;
      }
      kill(-pgid_, SIGKILL);  // a process forked while we were killing
      child::SleepMs(1);
    }
  }
  for (int& fd : replyRead_) CloseFd(&fd);
  for (uint32_t i = 0; i < slots_; i++) CloseChildEnd(i);
  if (subreaper_) subreaper::Release();
  if (control_ != nullptr) {
    Header* h = header();
    if (p0InNode_) {  // p0's regions are Node's mappings
      for (uint32_t r = 0; r < h->regions; r++) {
        if (h->region[r].address != 0) munmap(reinterpret_cast<void*>(h->region[r].address), h->region[r].pages * h->pageSize);
        h->region[r].address = 0;
      }
    }
    if (h->readFd >= 0) close(h->readFd);
    h->readFd = -1;
  }
  subreaper_ = false;
  if (control_ != nullptr) munmap(control_, controlBytes_);
  if (stacks_ != nullptr) munmap(stacks_, stacksBytes_);
  control_ = stacks_ = nullptr;
  if (!ok && !error.isSet()) {
    error.set("ERR_CHILD_FAILED", "some trace processes could not be reaped in time")
        .with("cause", "unreaped")
        .with("pgid", pgid_)
        .with("budgetMs", static_cast<double>(budgetMs));
  }
  return ok;
}

bool Tree::reaped(uint32_t i) const {
  pid_t pid = static_cast<pid_t>(slot(i)->pid);
  for (pid_t p : reapedPids_) {
    if (p == pid) return true;
  }
  return false;
}

bool Tree::SyscallFailed(int e, const char* sc, const char* what) {
  error.setSyscall(sc, e, what);
  return false;
}

// Node's copies of slot i's ends (the process's command read end and reply write end), once
// the process holding them exists.
void Tree::CloseChildEnd(uint32_t i) {
  if (i >= childEnds_.size() || !childEnds_[i] || control_ == nullptr) return;
  Header* h = header();
  if (h->cmdRead[i] >= 0) close(h->cmdRead[i]);
  if (h->replyWrite[i] >= 0) close(h->replyWrite[i]);
  childEnds_[i] = false;
}

// Sends the command already written into slot i and waits for its reply.
bool Tree::Command(uint32_t i, uint32_t op, uint64_t deadlineNs) {
  Slot* s = slot(i);
  s->op = op;
  if (p0InNode_ && i == 0) {  // p0 is Node: this thread runs the command itself
    s->status = 0;
    return ExecuteInNode(s) || Refused(i);
  }
  if (!child::WriteByte(cmdWrite_[i], 'C')) return Died(i, OpName(op));
  char c = 0;
  wait::Result w = wait::WaitByte(replyRead_[i], deadlineNs, &c);
  if (w == wait::kTimedOut) return Deadline(i, OpName(op));
  if (w == wait::kFailed) return PollFailed();
  if (w == wait::kEof) return Died(i, OpName(op));
  if (c == kReplyFailed) return Refused(i);
  if (c != kReplyOk) return Protocol(i, c);
  return true;
}

bool Tree::ExpectReady(uint32_t i, uint64_t deadlineNs) {
  char c = 0;
  wait::Result w = wait::WaitByte(replyRead_[i], deadlineNs, &c);
  if (w == wait::kTimedOut) return Deadline(i, "start");
  if (w == wait::kFailed) return PollFailed();
  if (w == wait::kEof) return Died(i, "start");
  if (c != kReplyReady) return Protocol(i, c);
  return true;
}

PendingError Tree::About(uint32_t i, const char* op) const {
  PendingError e;
  e.with("slot", i).with("pid", static_cast<double>(slot(i)->pid));
  if (op != nullptr) e.with("op", op);
  return e;
}

bool Tree::EndTree(const PendingError& e) {
  Teardown(5000);
  error = e;
  return false;
}

bool Tree::Deadline(uint32_t i, const char* op) {
  return EndTree(About(i, op).set("ERR_CHILD_DEADLINE", "a trace process did not finish before the step deadline").with("cause", "deadline"));
}

bool Tree::Died(uint32_t i, const char* op) {
  PendingError e = About(i, op);
  e.set("ERR_CHILD_FAILED", "a trace process died").with("cause", "died");
  const pid_t pid = static_cast<pid_t>(slot(i)->pid);
  if (pid > 0 && wait::WaitExited(pid, child::NowNs() + 200000000ULL) == wait::kReady) {
    std::string stat = StatText(pid);
    if (!stat.empty()) e.with("stat", stat);
  }
  return EndTree(e);
}

// The process is alive and idle; only the command failed.
bool Tree::Refused(uint32_t i) {
  Slot* s = slot(i);
  error = About(i, OpName(s->op));
  if (s->stage == kStageInterrupted) {
    error.set("ERR_INTERRUPTED", "a paced access loop was interrupted")
        .with("cause", "interrupted")
        .with("done", static_cast<double>(s->done))
        .with("total", static_cast<double>(s->count));
  } else {
    error.setSyscall(StageSyscall(s->stage), s->status, "").with("cause", "refused");
  }
  return false;
}

bool Tree::Protocol(uint32_t i, char c) {
  return EndTree(About(i, nullptr)
                     .set("ERR_CHILD_FAILED", "a trace process sent an unexpected reply")
                     .with("cause", "protocol")
                     .with("reply", static_cast<unsigned char>(c)));
}

bool Tree::PollFailed() {
  PendingError e;
  e.setSyscall("poll", errno, "waiting for a trace process");
  return EndTree(e);
}

}  // namespace proctree
}  // namespace cowlab
