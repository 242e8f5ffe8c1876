// The kernel engine's process tree, Node side: `new ProcTree(spec)` prepares the shared control
// and stack mappings and one channel (command pipe + reply pipe) per trace process; its
// methods send one command each and return a Promise (an AsyncWorker waits for the reply on a
// libuv thread, so the JS thread never blocks). The trace processes run proctree_loop.cc.
//
// Channels. Slot i has a command pipe (Node writes, process i reads) and a reply pipe (process
// i writes, Node reads). Node keeps only the command write ends and reply read ends. A process
// keeps the read/write ends of its own slot and of the slots of the processes it will fork
// (its subtree in the trace); the fork hands the child's subtree over to the child. So:
//   - only Node can write commands: if Node dies, every process reads EOF and exits;
//   - only process i holds its reply write end: EOF on it means process i exited, or exec'd
//     (the write end is close-on-exec), which is how exec success is seen.
//
// Reaping. p0 makes its own process group; every trace process is in it (exec keeps it). Node
// is a child subreaper while a tree exists (PR_SET_CHILD_SUBREAPER, reference-counted and
// restored after), so orphaned trace processes become Node's children instead of init's.
// Normal exits are reaped by the live parent (REAP command) or by Node (`reap`). On any
// failure (a deadline, a process dying) and on destroy(), Node kills the whole group with
// SIGKILL and reaps it with waitid(P_PGID) until the group is empty: every process is reaped,
// including one whose fork was still in flight, without Node having to know its pid.
// The group is in the children registry (children.h) from p0's fork until those final reaps,
// so killAllChildren() (Ctrl-C in `cowlab run`) kills the whole tree with kill(-pgid).
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "child.h"
#include "children.h"
#include "errors.h"
#include "page.h"
#include "proctree.h"
#include "promise_worker.h"
#include "wait.h"

namespace cowlab {
namespace {

using proctree::Header;
using proctree::Slot;
using proctree::SlotAt;

// ---- child subreaper, reference-counted across trees ----

std::mutex gSubreaperMutex;
int gSubreaperUsers = 0;
int gSubreaperBefore = 0;

int AcquireSubreaper() {
  std::lock_guard<std::mutex> lock(gSubreaperMutex);
  if (gSubreaperUsers == 0) {
    int before = 0;
    if (prctl(PR_GET_CHILD_SUBREAPER, &before, 0, 0, 0) != 0) return errno;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return errno;
    gSubreaperBefore = before;
  }
  gSubreaperUsers++;
  return 0;
}

void ReleaseSubreaper() {
  std::lock_guard<std::mutex> lock(gSubreaperMutex);
  if (gSubreaperUsers == 0) return;
  if (--gSubreaperUsers == 0) prctl(PR_SET_CHILD_SUBREAPER, gSubreaperBefore, 0, 0, 0);
}

// ---- text ranges a new process prefaults: the addon, libc and the vDSO ----

struct TextCollect {
  uintptr_t want[2];
  Header* h;
  bool addonBindNow = false;
};

// Whether an object's dynamic section asks for every symbol to be bound at load (-z now).
bool BindsNow(const struct dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; i++) {
    if (info->dlpi_phdr[i].p_type != PT_DYNAMIC) continue;
    const auto* d = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    for (; d->d_tag != DT_NULL; d++) {
      if (d->d_tag == DT_BIND_NOW) return true;
      if (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_BIND_NOW) != 0) return true;
      if (d->d_tag == DT_FLAGS_1 && (d->d_un.d_val & DF_1_NOW) != 0) return true;
    }
  }
  return false;
}

int CollectText(struct dl_phdr_info* info, size_t, void* data) {
  auto* c = static_cast<TextCollect*>(data);
  bool match = info->dlpi_name != nullptr && strstr(info->dlpi_name, "vdso") != nullptr;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    uintptr_t lo = info->dlpi_addr + ph.p_vaddr, hi = lo + ph.p_memsz;
    for (uintptr_t w : c->want) match = match || (w >= lo && w < hi);
    if (c->want[0] >= lo && c->want[0] < hi) c->addonBindNow = BindsNow(info);
  }
  if (!match) return 0;
  const size_t ps = PageSize();
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_R) == 0 || (ph.p_flags & PF_W) != 0) continue;
    if (c->h->textRanges >= proctree::kMaxTextRanges) return 1;
    uintptr_t lo = (info->dlpi_addr + ph.p_vaddr) & ~(ps - 1);
    uintptr_t hi = RoundUp(info->dlpi_addr + ph.p_vaddr + ph.p_memsz, ps);
    c->h->text[c->h->textRanges++] = {lo, hi - lo};
  }
  return 0;
}

// The exit status (waitpid form) of a zombie from /proc/<pid>/stat field 52, or -1.
int ZombieExitCode(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  ssize_t n = child::ReadFileInto(path, buf, sizeof buf - 1);
  if (n <= 0) return -1;
  buf[n] = 0;
  char* p = strrchr(buf, ')');
  if (p == nullptr) return -1;
  int field = 2;  // the text after ") " starts at field 3
  for (char* q = p + 1; *q != 0; q++) {
    if (*q == ' ' && ++field == 52) return atoi(q + 1);
  }
  return -1;
}

// The state letter of /proc/<pid>/stat (R, S, Z, ...), or 0 when the process is gone.
char ProcState(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  ssize_t n = child::ReadFileInto(path, buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = 0;
  const char* p = strrchr(buf, ')');
  return p != nullptr && p[1] == ' ' ? p[2] : 0;
}

std::string DescribeStatus(int status) {
  if (status < 0) return "its exit status is unknown";
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  }
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

const char* StageSyscall(uint32_t stage) {
  switch (stage) {
    case proctree::kStageReserve: return "mmap";
    case proctree::kStageMemfd: return "memfd_create";
    case proctree::kStageFtruncate: return "ftruncate";
    case proctree::kStageMmap: return "mmap";
    case proctree::kStageMadvise: return "madvise";
    case proctree::kStageClone: return "clone";
    case proctree::kStageMprotect: return "mprotect";
    case proctree::kStageExecDup: return "dup2";
    case proctree::kStageExecve: return "execve";
    case proctree::kStageWaitpid: return "waitpid";
    default: return "command";
  }
}

const char* OpText(uint32_t op) {
  switch (op) {
    case proctree::kOpMap: return "mapping the regions";
    case proctree::kOpFork: return "forking";
    case proctree::kOpWrite: return "writing";
    case proctree::kOpRead: return "reading";
    case proctree::kOpProtect: return "changing protection";
    case proctree::kOpExec: return "exec'ing";
    case proctree::kOpExit: return "exiting";
    case proctree::kOpReap: return "reaping a child";
    default: return "starting";
  }
}

// ---- the tree (plain C++; used by the JS thread and, one operation at a time, a worker) ----

// Where a slot's arrays start in its block (64-byte aligned), and the block's size.
struct SlotLayout {
  size_t pages, lat, faults, flags, values, bytes;
  SlotLayout(size_t cap, size_t ps) {
    size_t a = RoundUp(sizeof(Slot), 64);
    pages = a;
    a += RoundUp(cap * 4, 64);
    lat = a;
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

struct RegionSpecIn {
  uint64_t pages;
  uint32_t backing, thp, dontfork, wipeonfork, anywhere;
};

class Tree {
 public:
  ~Tree() {
    if (!tornDown_) Teardown(200);
  }

  // Builds the mappings and pipes. Returns an empty string or what failed.
  std::string Create(const std::vector<RegionSpecIn>& regions, const std::vector<int32_t>& parents,
                     const std::vector<uint32_t>& capacity, const std::string& execPath, bool shed,
                     int* err, const char** syscallName) {
    const size_t ps = PageSize();
    slots_ = static_cast<uint32_t>(parents.size());
    size_t headerBytes = RoundUp(sizeof(Header), ps);
    controlBytes_ = headerBytes;
    for (uint32_t i = 0; i < slots_; i++) controlBytes_ += SlotLayout(capacity[i], ps).bytes;
    void* c = mmap(nullptr, controlBytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (c == MAP_FAILED) return Failed(errno, "mmap", "mapping the control area", err, syscallName);
    control_ = static_cast<uint8_t*>(c);
    memset(control_, 0, controlBytes_);
    stacksBytes_ = slots_ * (proctree::kStackBytes + ps);
    void* st = mmap(nullptr, stacksBytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (st == MAP_FAILED) return Failed(errno, "mmap", "mapping the process stacks", err, syscallName);
    stacks_ = static_cast<uint8_t*>(st);
    for (uint32_t i = 0; i < slots_; i++) {  // a guard page below each stack
      if (mprotect(stacks_ + i * (proctree::kStackBytes + ps), ps, PROT_NONE) != 0) {
        return Failed(errno, "mprotect", "placing the stack guard pages", err, syscallName);
      }
    }
    Header* h = header();
    h->pageSize = ps;
    h->controlBytes = controlBytes_;
    h->stacks = stacks_;
    h->slots = slots_;
    h->shedNodeMemory = shed ? 1 : 0;
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
      s->faultOff = off + l.faults;
      s->flagsOff = off + l.flags;
      s->valueOff = off + l.values;
      off += l.bytes;
    }
    cmdWrite_.assign(slots_, -1);
    replyRead_.assign(slots_, -1);
    execd_.assign(slots_, false);
    gone_.assign(slots_, false);
    for (uint32_t i = 0; i < slots_; i++) h->cmdRead[i] = h->replyWrite[i] = -1;
    childEnds_ = true;
    for (uint32_t i = 0; i < slots_; i++) {
      int cmd[2], rep[2];
      if (pipe2(cmd, O_CLOEXEC) != 0) return Failed(errno, "pipe2", "creating a command pipe", err, syscallName);
      if (pipe2(rep, O_CLOEXEC) != 0) {
        int e = errno;
        close(cmd[0]);
        close(cmd[1]);
        return Failed(e, "pipe2", "creating a reply pipe", err, syscallName);
      }
      h->cmdRead[i] = cmd[0];
      cmdWrite_[i] = cmd[1];
      replyRead_[i] = rep[0];
      h->replyWrite[i] = rep[1];
    }
    TextCollect tc = {{reinterpret_cast<uintptr_t>(&proctree::ProcessEntry), reinterpret_cast<uintptr_t>(&clone)}, h};
    dl_iterate_phdr(CollectText, &tc);
    if (!tc.addonBindNow) {
      // A lazily bound call in a forked process runs the dynamic linker's resolver, which reads
      // Node's malloc heap and writes the GOT: neither is allowed (nor present) there.
      *err = 0;
      *syscallName = nullptr;
      return "the cowlab addon was linked with lazy binding; the process tree needs it linked with -Wl,-z,now "
             "(binding.gyp and CMakeLists.txt do this: rebuild with npm run build:addon)";
    }
    return "";
  }

  Header* header() const { return reinterpret_cast<Header*>(control_); }
  Slot* slot(uint32_t i) const { return SlotAt(header(), i); }
  uint32_t slots() const { return slots_; }
  bool tornDown() const { return tornDown_; }
  bool started() const { return pgid_ > 0; }
  bool execd(uint32_t i) const { return execd_[i]; }
  bool gone(uint32_t i) const { return gone_[i]; }

  // ---- worker-thread operations; each returns false with error_ set ----

  bool Start(uint64_t deadlineNs) {
    int e = AcquireSubreaper();
    if (e != 0) {
      error_.setSyscall("prctl", e, "becoming the child subreaper of the trace processes");
      return false;
    }
    subreaper_ = true;
    Slot* s0 = slot(0);
    pid_t pid = clone(proctree::ProcessEntry, proctree::StackTop(header(), 0), SIGCHLD, s0);
    if (pid < 0) {
      error_.setSyscall("clone", errno, "forking p0 from the Node process");
      return false;
    }
    setpgid(pid, pid);  // p0 does the same; whichever runs first makes the group
    pgid_ = pid;
    children::RegisterGroup(pgid_);  // killAllChildren (Ctrl-C) kills the whole tree
    s0->pid = pid;
    CloseChildEnds();
    if (!ExpectReady(0, deadlineNs)) return false;
    return Command(0, proctree::kOpMap, deadlineNs);
  }

  bool Fork(uint32_t parent, uint32_t childSlot, uint64_t deadlineNs) {
    Slot* s = slot(parent);
    s->arg = childSlot;
    if (!Command(parent, proctree::kOpFork, deadlineNs)) return false;
    return ExpectReady(childSlot, deadlineNs);
  }

  bool Access(uint32_t i, bool write, uint64_t deadlineNs) {
    return Command(i, write ? proctree::kOpWrite : proctree::kOpRead, deadlineNs);
  }

  bool Protect(uint32_t i, uint64_t deadlineNs) { return Command(i, proctree::kOpProtect, deadlineNs); }

  bool Reap(uint32_t i, uint64_t deadlineNs) { return Command(i, proctree::kOpReap, deadlineNs); }

  // exec: success is EOF on the reply pipe (close-on-exec); a failure is an 'E' reply.
  bool Exec(uint32_t i, uint64_t deadlineNs, uint64_t* ns) {
    Slot* s = slot(i);
    s->op = proctree::kOpExec;
    uint64_t t0 = child::NowNs();
    if (!child::WriteByte(cmdWrite_[i], 'C')) return Died(i, "exec'ing");
    char c = 0;
    wait::Result w = wait::WaitByte(replyRead_[i], deadlineNs, &c);
    *ns = child::NowNs() - t0;
    if (w == wait::kTimedOut) return Deadline(i, "exec'ing");
    if (w == wait::kFailed) return PollFailed();
    if (w == wait::kReady && c == proctree::kReplyFailed) return Refused(i);
    if (w == wait::kReady) return Protocol(i, c);
    // EOF: the process image was replaced, or the process died (then it is a zombie).
    char state = ProcState(static_cast<pid_t>(s->pid));
    if (state == 0 || state == 'Z' || state == 'X') return Died(i, "exec'ing");
    execd_[i] = true;
    CloseFd(&replyRead_[i]);
    return true;
  }

  // exit: an EXIT command, or for an exec'd process the end of its stdin; then wait until it
  // has exited (a zombie until its parent or Node reaps it).
  bool Exit(uint32_t i, uint64_t deadlineNs, uint64_t* ns) {
    Slot* s = slot(i);
    const pid_t pid = static_cast<pid_t>(s->pid);
    uint64_t t0 = child::NowNs();
    if (execd_[i]) {
      CloseFd(&cmdWrite_[i]);
    } else {
      s->op = proctree::kOpExit;
      child::WriteByte(cmdWrite_[i], 'C');  // a dead process is caught by WaitExited below
    }
    wait::Result w = wait::WaitExited(pid, deadlineNs);
    *ns = child::NowNs() - t0;
    if (w == wait::kTimedOut) return Deadline(i, "exiting");
    if (w == wait::kFailed) return PollFailed();
    gone_[i] = true;
    CloseFd(&cmdWrite_[i]);
    CloseFd(&replyRead_[i]);
    return true;
  }

  // Node reaps an orphan that became its child (or p0). ECHILD is an error: not ours. The reap
  // runs under the children registry's lock, which drops the group's entry if this reap left
  // the group empty (a trace process reaped by its parent leaves the parent in the group).
  bool ReapByNode(pid_t pid, uint64_t deadlineNs, int* status) {
    for (;;) {
      pid_t r = children::ReapInGroup(pgid_, pid, status);
      if (r == pid) return true;
      if (r < 0 && errno != EINTR) {
        error_.setSyscall("waitpid", errno, "reaping trace process " + std::to_string(pid) + " in Node");
        return false;
      }
      if (child::NowNs() >= deadlineNs) {
        error_.set("ERR_CHILD_DEADLINE", "trace process " + std::to_string(pid) + " was not reapable in time");
        Teardown(5000);
        return false;
      }
      child::SleepMs(1);
    }
  }

  // Kills every trace process (the whole process group) and reaps them all; restores the
  // subreaper setting and releases the mappings and fds. Returns false if some process could
  // not be reaped within `budgetMs`.
  bool Teardown(uint64_t budgetMs) {
    if (tornDown_) return true;
    tornDown_ = true;
    bool ok = true;
    for (int& fd : cmdWrite_) CloseFd(&fd);  // idle processes exit at EOF anyway
    if (pgid_ > 0) {
      children::UnregisterGroup(pgid_);  // before the reaps below empty the group
      kill(-pgid_, SIGKILL);
      for (uint32_t i = 0; i < slots_; i++) {  // in case p0 had not made its group yet
        pid_t pid = static_cast<pid_t>(slot(i)->pid);
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
    CloseChildEnds();
    if (subreaper_) ReleaseSubreaper();
    subreaper_ = false;
    if (control_ != nullptr) munmap(control_, controlBytes_);
    if (stacks_ != nullptr) munmap(stacks_, stacksBytes_);
    control_ = stacks_ = nullptr;
    if (!ok && !error_.isSet()) {
      error_.set("ERR_CHILD_FAILED", "some trace processes (process group " + std::to_string(pgid_) +
                                         ") could not be reaped within " + std::to_string(budgetMs) + " ms");
    }
    return ok;
  }

  // Node marks processes that were reaped (by their parent or by Node); teardown skips them
  // when it kills by pid (their pids may be reused by then).
  void MarkReaped(pid_t pid) { reapedPids_.push_back(pid); }

  PendingError error_;

 private:
  bool reaped(uint32_t i) const {
    pid_t pid = static_cast<pid_t>(slot(i)->pid);
    for (pid_t p : reapedPids_) {
      if (p == pid) return true;
    }
    return false;
  }

  std::string Failed(int e, const char* sc, const char* what, int* err, const char** syscallName) {
    *err = e;
    *syscallName = sc;
    return what;
  }

  void CloseChildEnds() {
    if (!childEnds_ || control_ == nullptr) return;
    Header* h = header();
    for (uint32_t i = 0; i < slots_; i++) {
      if (h->cmdRead[i] >= 0) close(h->cmdRead[i]);
      if (h->replyWrite[i] >= 0) close(h->replyWrite[i]);
    }
    childEnds_ = false;
  }

  static void CloseFd(int* fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }

  // Sends the command already written into slot i and waits for its reply.
  bool Command(uint32_t i, uint32_t op, uint64_t deadlineNs) {
    Slot* s = slot(i);
    s->op = op;
    if (!child::WriteByte(cmdWrite_[i], 'C')) return Died(i, OpText(op));
    char c = 0;
    wait::Result w = wait::WaitByte(replyRead_[i], deadlineNs, &c);
    if (w == wait::kTimedOut) return Deadline(i, OpText(op));
    if (w == wait::kFailed) return PollFailed();
    if (w == wait::kEof) return Died(i, OpText(op));
    if (c == proctree::kReplyFailed) return Refused(i);
    if (c != proctree::kReplyOk) return Protocol(i, c);
    return true;
  }

  bool ExpectReady(uint32_t i, uint64_t deadlineNs) {
    char c = 0;
    wait::Result w = wait::WaitByte(replyRead_[i], deadlineNs, &c);
    if (w == wait::kTimedOut) return Deadline(i, "starting");
    if (w == wait::kFailed) return PollFailed();
    if (w == wait::kEof) return Died(i, "starting");
    if (c != proctree::kReplyReady) return Protocol(i, c);
    return true;
  }

  std::string Who(uint32_t i) const {
    return "trace process in slot " + std::to_string(i) + " (pid " + std::to_string(slot(i)->pid) + ")";
  }

  bool Deadline(uint32_t i, const char* doing) {
    std::string who = Who(i);
    Teardown(5000);
    error_.set("ERR_CHILD_DEADLINE", who + " did not finish " + doing +
                                         " before the step deadline; every trace process was killed and reaped");
    return false;
  }

  bool Died(uint32_t i, const char* doing) {
    std::string who = Who(i);
    pid_t pid = static_cast<pid_t>(slot(i)->pid);
    int status = -1;
    if (pid > 0 && wait::WaitExited(pid, child::NowNs() + 200000000ULL) == wait::kReady) status = ZombieExitCode(pid);
    Teardown(5000);
    error_.set("ERR_CHILD_FAILED", who + " died while " + doing + " (" + DescribeStatus(status) +
                                       "); every trace process was killed and reaped");
    return false;
  }

  bool Refused(uint32_t i) {
    Slot* s = slot(i);
    error_.setSyscall(StageSyscall(s->stage), s->status, Who(i) + " failed while " + OpText(s->op));
    return false;
  }

  bool Protocol(uint32_t i, char c) {
    std::string who = Who(i);
    Teardown(5000);
    error_.set("ERR_CHILD_FAILED", who + " sent an unexpected reply byte " + std::to_string(static_cast<int>(c)));
    return false;
  }

  bool PollFailed() {
    int e = errno;
    Teardown(5000);
    error_.setSyscall("poll", e, "waiting for a trace process");
    return false;
  }

  uint32_t slots_ = 0;
  uint8_t* control_ = nullptr;
  size_t controlBytes_ = 0;
  uint8_t* stacks_ = nullptr;
  size_t stacksBytes_ = 0;
  std::vector<int> cmdWrite_, replyRead_;
  std::vector<bool> execd_, gone_;
  std::vector<pid_t> reapedPids_;
  bool childEnds_ = false;  // Node still holds the processes' ends (before p0 starts)
  bool subreaper_ = false;
  bool tornDown_ = false;
  pid_t pgid_ = -1;
};

// ---- JS class ----

class ProcTreeWrap;

enum class Kind { kStart, kFork, kAccess, kProtect, kExec, kExit, kReapByProcess, kReapByNode, kDestroy };

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
    std::vector<RegionSpecIn> regions;
    for (uint32_t r = 0; r < ra.Length(); r++) {
      Napi::Value v = ra.Get(r);
      if (!v.IsObject()) ThrowBadArg(env, fn, "regions", "an array of objects");
      Napi::Object o = v.As<Napi::Object>();
      RegionSpecIn in;
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
    tree_ = std::make_unique<Tree>();
    int err = 0;
    const char* sc = nullptr;
    std::string what = tree_->Create(regions, parents, capacity, execPath, shed, &err, &sc);
    if (!what.empty()) {
      tree_->Teardown(0);
      if (sc == nullptr) throw MakeError(env, "ERR_ADDON_LOAD", what);
      throw MakeSyscallError(env, sc, err, what);
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

  // access(slot, write, region, pages: Uint32Array, tag: bigint, deadlineMs)
  //   -> { latencyNs: Float64Array, faults: Uint32Array, flags: Uint8Array,
  //        values: BigUint64Array | null, opFaults, opMajorFaults, opNs }
  Napi::Value Access(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env());
    const char* fn = "access";
    uint32_t s = RunningSlot(info, 0, fn);
    bool write = ArgBool(info, 1, fn, "write");
    uint64_t r = ArgCount(info, 2, fn, "region", tree_->header()->regions - 1);
    uint64_t tag = ArgAddress(info, 4, fn, "tag");
    uint64_t d = ArgCount(info, 5, fn, "deadlineMs");
    Slot* sl = tree_->slot(s);
    SetPages(info, 3, fn, sl);
    sl->region = static_cast<uint32_t>(r);
    sl->tag = tag;
    auto* w = Worker(info, Kind::kAccess, d);
    w->slot = s;
    w->write = write;
    return Queue(w);
  }

  // protect(slot, region, prot, pages: Uint32Array (empty: whole region), deadlineMs) -> { opNs, opFaults }
  Napi::Value Protect(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env());
    const char* fn = "protect";
    uint32_t s = RunningSlot(info, 0, fn);
    uint64_t r = ArgCount(info, 1, fn, "region", tree_->header()->regions - 1);
    int32_t prot = ArgInt(info, 2, fn, "prot");
    uint64_t d = ArgCount(info, 4, fn, "deadlineMs");
    Slot* sl = tree_->slot(s);
    SetPages(info, 3, fn, sl);
    sl->region = static_cast<uint32_t>(r);
    sl->arg = prot;
    auto* w = Worker(info, Kind::kProtect, d);
    w->slot = s;
    return Queue(w);
  }

  // exec(slot, deadlineMs) -> { opNs }
  Napi::Value Exec(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env());
    uint32_t s = RunningSlot(info, 0, "exec");
    uint64_t d = ArgCount(info, 1, "exec", "deadlineMs");
    auto* w = Worker(info, Kind::kExec, d);
    w->slot = s;
    return Queue(w);
  }

  // exit(slot, deadlineMs) -> { opNs, pid }: the process has exited (not yet reaped).
  Napi::Value Exit(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env());
    uint32_t s = LiveSlot(info, 0, "exit");
    uint64_t d = ArgCount(info, 1, "exit", "deadlineMs");
    auto* w = Worker(info, Kind::kExit, d);
    w->slot = s;
    return Queue(w);
  }

  // reap(reaperSlot, pid, deadlineMs) -> { status, opNs }. reaperSlot -1: Node reaps (the
  // process is Node's child: p0, or an orphan adopted by the subreaper).
  Napi::Value Reap(const Napi::CallbackInfo& info) {
    CheckUsable(info.Env());
    int32_t reaper = ArgInt(info, 0, "reap", "reaperSlot");
    int32_t pid = ArgInt(info, 1, "reap", "pid");
    uint64_t d = ArgCount(info, 2, "reap", "deadlineMs");
    if (pid <= 0) ThrowBadArg(info.Env(), "reap", "pid", "a positive pid");
    Kind k = Kind::kReapByNode;
    if (reaper >= 0) {
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
      break;
    }
    case Kind::kFork: {
      Slot* s = t->slot(slot);
      out.Set("pid", static_cast<double>(s->childPid));
      out.Set("forkNs", static_cast<double>(s->timeNs));
      out.Set("faults", static_cast<double>(s->faults));
      break;
    }
    case Kind::kAccess: {
      Slot* s = t->slot(slot);
      const size_t n = s->count;
      Napi::Float64Array lat = Napi::Float64Array::New(env, n);
      Napi::Uint32Array faults = Napi::Uint32Array::New(env, n);
      Napi::Uint8Array flags = Napi::Uint8Array::New(env, n);
      for (size_t i = 0; i < n; i++) lat[i] = static_cast<double>(s->lat()[i]);
      if (n > 0) {
        memcpy(faults.Data(), s->faultCounts(), n * 4);
        memcpy(flags.Data(), s->flags(), n);
      }
      out.Set("latencyNs", lat);
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
    case Kind::kProtect: {
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
      out.Set("status", status_);
      out.Set("exitCode", WIFEXITED(status_) ? Napi::Value(Napi::Number::New(env, WEXITSTATUS(status_))) : env.Null());
      out.Set("signal", WIFSIGNALED(status_) ? Napi::Value(Napi::Number::New(env, WTERMSIG(status_))) : env.Null());
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
    Napi::Error e = t->error_.toJs(env);
    t->error_ = PendingError();
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

// setChildSubreaper(on) -> previous (boolean). For tests and tools that adopt orphans.
Napi::Value SetChildSubreaper(const Napi::CallbackInfo& info) {
  bool on = ArgBool(info, 0, "setChildSubreaper", "on");
  int before = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, &before, 0, 0, 0) != 0 || prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0) != 0) {
    throw MakeSyscallError(info.Env(), "prctl", errno, "setting PR_SET_CHILD_SUBREAPER");
  }
  return Napi::Boolean::New(info.Env(), before != 0);
}

// reapChild(pid) -> waitpid status, or null while the child has not exited (WNOHANG).
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

void InitProcTree(Napi::Env env, Napi::Object exports) {
  exports.Set("ProcTree", ProcTreeWrap::Define(env));
  exports.Set("setChildSubreaper", Napi::Function::New(env, SetChildSubreaper, "setChildSubreaper"));
  exports.Set("reapChild", Napi::Function::New(env, ReapChild, "reapChild"));
}

}  // namespace cowlab
