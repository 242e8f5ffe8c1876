// The kernel engine's process tree, Node side: the shared control and stack mappings, one
// channel (command pipe + reply pipe) per trace process, the commands and the teardown. Plain
// C++, used by the JS thread (creation, argument checks) and, one operation at a time, by the
// worker thread of the JS class (proctree.cc). The trace processes run proctree_loop.cc.
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
// is a child subreaper while a tree exists (subreaper.h), so orphaned trace processes become
// Node's children instead of init's. Normal exits are reaped by the live parent (REAP command)
// or by Node (`reap`). On any failure (a deadline, a process dying) and on destroy(), Node
// kills the whole group with SIGKILL and reaps it with waitid(P_PGID) until the group is
// empty: every process is reaped, including one whose fork was still in flight, without Node
// having to know its pid. The group is in the children registry (children.h) from p0's fork
// until those final reaps, so killAllChildren() (Ctrl-C in `cowlab run`) kills the whole tree
// with kill(-pgid).
//
// Failures. Each operation returns false with `error` set: a CowlabError code, a bare
// statement, and the raw facts (errors.h) src/engines/kernel/tree.ts words for the user:
//   cause    "deadline" | "died" | "protocol" | "refused" | "reap-deadline" | "unreaped" |
//            "lazy-binding"
//   slot, pid, op   the process and the command ("start", "map", "fork", "write", "read",
//                   "protect", "exec", "exit", "reap")
//   stat     died: /proc/<pid>/stat of the dead process, read while it was a zombie (its
//            wait status is field 52), when it could be read before the teardown reaped it
//   reply    protocol: the unexpected reply byte
//   pgid, budgetMs   unreaped: the group and the time its reaping was given
// "refused" (the process's own syscall failed) is an ERR_SYSCALL with `syscall` and `errno`.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "errors.h"
#include "proctree.h"

namespace cowlab {
namespace proctree {

struct RegionSpec {
  uint64_t pages;
  uint32_t backing, thp, dontfork, wipeonfork, anywhere;
};

class Tree {
 public:
  ~Tree();

  // Builds the mappings and pipes; false with `error` set when something failed.
  bool Create(const std::vector<RegionSpec>& regions, const std::vector<int32_t>& parents,
              const std::vector<uint32_t>& capacity, const std::string& execPath, bool shed,
              bool p0InNode);

  Header* header() const { return reinterpret_cast<Header*>(control_); }
  Slot* slot(uint32_t i) const { return SlotAt(header(), i); }
  uint32_t slots() const { return slots_; }
  bool tornDown() const { return tornDown_; }
  bool started() const { return started_; }
  bool p0InNode() const { return p0InNode_; }
  bool execd(uint32_t i) const { return execd_[i]; }
  bool gone(uint32_t i) const { return gone_[i]; }

  // ---- worker-thread operations; each returns false with `error` set ----
  bool Start(uint64_t deadlineNs);
  bool Fork(uint32_t parent, uint32_t childSlot, uint64_t deadlineNs);
  bool Access(uint32_t i, bool write, uint64_t deadlineNs);
  bool Protect(uint32_t i, uint64_t deadlineNs);
  bool Pageout(uint32_t i, uint64_t deadlineNs);
  bool Reap(uint32_t i, uint64_t deadlineNs);
  // exec: success is EOF on the reply pipe (close-on-exec); a failure is an 'E' reply.
  bool Exec(uint32_t i, uint64_t deadlineNs, uint64_t* ns);
  // exit: an EXIT command, or for an exec'd process the end of its stdin; then wait until it
  // has exited (a zombie until its parent or Node reaps it).
  bool Exit(uint32_t i, uint64_t deadlineNs, uint64_t* ns);
  // Node reaps an orphan that became its child (or p0).
  bool ReapByNode(pid_t pid, uint64_t deadlineNs, int* status);
  // Kills every trace process (the whole process group) and reaps them all; restores the
  // subreaper setting and releases the mappings and fds. Returns false if some process could
  // not be reaped within `budgetMs`.
  bool Teardown(uint64_t budgetMs);
  // Node marks processes that were reaped (by their parent or by Node); teardown skips them
  // when it kills by pid (their pids may be reused by then).
  void MarkReaped(pid_t pid) { reapedPids_.push_back(pid); }

  PendingError error;

 private:
  bool reaped(uint32_t i) const;
  bool SyscallFailed(int e, const char* sc, const char* what);
  void CloseChildEnd(uint32_t i);
  void JoinGroup(pid_t pgid);
  bool Command(uint32_t i, uint32_t op, uint64_t deadlineNs);
  bool ExpectReady(uint32_t i, uint64_t deadlineNs);
  // Failures of process i while doing `op`; all but Refused kill and reap the whole tree.
  // About: which process, doing what (taken before the teardown, which unmaps the slots).
  PendingError About(uint32_t i, const char* op) const;
  bool EndTree(const PendingError& e);
  bool Deadline(uint32_t i, const char* op);
  bool Died(uint32_t i, const char* op);
  bool Refused(uint32_t i);
  bool Protocol(uint32_t i, char c);
  bool PollFailed();

  uint32_t slots_ = 0;
  uint8_t* control_ = nullptr;
  size_t controlBytes_ = 0;
  uint8_t* stacks_ = nullptr;
  size_t stacksBytes_ = 0;
  std::vector<int> cmdWrite_, replyRead_;
  std::vector<bool> execd_, gone_;
  std::vector<pid_t> reapedPids_;
  std::vector<bool> childEnds_;  // Node still holds slot i's process ends (before it exists)
  bool started_ = false;
  bool p0InNode_ = false;
  bool subreaper_ = false;
  bool tornDown_ = false;
  pid_t pgid_ = -1;
};

}  // namespace proctree
}  // namespace cowlab
