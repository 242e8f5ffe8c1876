// The process tree of the kernel engine: the memory layout Node and the trace processes share,
// and the entry point of a trace process. Node side: proctree_node.cc (the tree: mappings,
// channels, commands, teardown) and proctree.cc (its JS class). Process side (the native
// command loop, async-signal-safe only): proctree_loop.cc.
//
// Everything a trace process reads or writes lives in two MAP_SHARED mappings that Node
// creates before the first process exists:
//
//   control  Header (page-aligned) | slot 0 block | slot 1 block | ...
//            Header: page size, the fd numbers of every channel, the parent slot of every
//            slot, the regions (spec from Node; addresses from p0), the exec path, the text
//            ranges a new process prefaults.
//            Slot block (page-aligned, one per trace process): the command Node wrote (op,
//            arguments, page list) and the results the process wrote (status, times, fault
//            counts, per-access latency / fault count / page-cache flag / value read).
//   stacks   one stack per slot (with a PROT_NONE guard page below it). Each process runs its
//            command loop on its own slot's stack. The stacks are MAP_SHARED, so fork never
//            write-protects them: neither the parent nor the child takes a COW fault on its own
//            stack after a fork, and the fault counts of every operation are the operation's.
//
// A process writes only to its own slot block, its own stack and the trace regions; Node writes
// a slot's command only while that process is idle (between a reply and the next command).
#pragma once
#include <cstddef>
#include <cstdint>

#include "elf_text.h"
#include "mapping.h"

namespace cowlab {
namespace proctree {

constexpr uint32_t kMaxSlots = 256;
constexpr uint32_t kMaxRegions = 64;
constexpr uint32_t kMaxTextRanges = 16;
constexpr size_t kStackBytes = 128 * 1024;
constexpr size_t kPathMax = 256;

enum Op : uint32_t {
  kOpNone = 0,
  kOpMap = 1,      // p0: map every region (no populate: that is an access op)
  kOpFork = 2,     // arg = child slot
  kOpWrite = 3,    // region, count pages from the list, tag
  kOpRead = 4,     // region, count pages from the list
  kOpProtect = 5,  // region, arg = PROT_* bits, count pages from the list (0: whole region)
  kOpExec = 6,     // execve(execPath) with stdin = the command pipe
  kOpExit = 7,     // _exit(0); no reply
  kOpReap = 8,     // arg64 = pid of a child of this process
  kOpPageout = 9,  // region, count pages from the list (0: whole region): madvise(MADV_PAGEOUT)
};

// Reply bytes on the reply pipe.
constexpr char kReplyReady = 'R';  // a new process finished its start-up
constexpr char kReplyOk = 'K';
constexpr char kReplyFailed = 'E';  // status holds the errno, stage what was being done

// Stages a command can fail at (Node reports the syscall of the stage with the errno).
enum Stage : uint32_t {
  kStageNone = 0,
  kStageBadCommand,
  kStageReserve,
  kStageMemfd,
  kStageFtruncate,
  kStageMmap,
  kStageMadvise,
  kStageClone,
  kStageBadPage,
  kStageMprotect,
  kStageExecDup,
  kStageExecve,
  kStageWaitpid,
  kStagePwrite,       // via pread: filling the source of the values
  kStagePread,        // via pread: the read(2) into the page
  kStageInterrupted,  // a paced access loop in Node stopped by killAllChildren()
};

// How a write access puts its 8 bytes into the page.
enum Via : uint32_t {
  kViaStore = 0,  // a CPU store
  kViaPread = 1,  // pread(2) from the tree's memfd: the kernel writes the page (copyout)
};

struct Region {
  uint64_t pages;
  uint32_t backing;     // Backing (mapping.h)
  uint32_t thp;         // 2 MiB aligned + MADV_HUGEPAGE; otherwise MADV_NOHUGEPAGE
  uint32_t dontfork;    // MADV_DONTFORK
  uint32_t wipeonfork;  // MADV_WIPEONFORK
  uint32_t anywhere;    // placed where mmap chooses, not on a 2 MiB boundary (trace placement "kernel")
  uint32_t pad;
  uint64_t address;     // written by p0 (kOpMap)
};

using elf::TextRange;

struct Header {
  uint64_t pageSize;
  uint64_t controlBytes;
  uint8_t* stacks;  // base of the stacks mapping (same address in every process)
  uint32_t slots, regions, textRanges;
  int32_t shedNodeMemory;  // p0 marks Node's anonymous memory MADV_DONTFORK
  // p0 is the Node process itself: its commands run on a Node worker thread (Tree::Command),
  // its regions are mapped in Node, and its forks copy Node's whole address space.
  int32_t p0InNode;
  // p0InNode: the process group a child of Node joins (0: a group of its own). Both Node and
  // the child call setpgid, whichever runs first.
  int32_t nodeGroup;
  int32_t readFd;  // memfd the `via pread` accesses read their values from (every process)
  int32_t parent[kMaxSlots];  // slot that forks this slot; -1 for p0
  int32_t cmdRead[kMaxSlots];
  int32_t replyWrite[kMaxSlots];
  uint64_t slotOffset[kMaxSlots];  // from the start of the control mapping
  Region region[kMaxRegions];
  TextRange text[kMaxTextRanges];
  char execPath[kPathMax];
  char execArg0[kPathMax];
  char devNull[16];
};

// Per-access flags.
constexpr uint8_t kInCore = 1;  // shared mapping: the page was in the page cache before the access

struct Slot {
  // Identity, written by Node at creation.
  uint32_t index;
  uint32_t pad0;
  uint64_t capacity;    // entries of each per-access array
  uint64_t blockBytes;  // size of this slot's block (page multiple)
  uint8_t* base;        // control mapping base (same address in every process)
  // The process itself, written by its parent right after clone and by the process at start.
  int64_t pid;
  // Command (Node writes while the process is idle).
  uint32_t op;
  uint32_t region;
  uint64_t count;
  int64_t arg;
  uint64_t tag;
  uint32_t via;     // write: Via
  uint32_t pad1;
  uint64_t paceNs;  // write/read: access i starts no earlier than the loop's start + i * paceNs
  // Result (the process writes before it replies).
  int32_t status;  // 0 or an errno
  uint32_t stage;
  uint64_t timeNs;   // whole operation (clock_gettime around it)
  uint64_t endNs;    // CLOCK_MONOTONIC when the operation ended (fork: when clone returned)
  uint64_t timerOverheadNs;  // the smallest back-to-back clock read, measured at start
  uint64_t faults;   // minor faults of the process across the operation
  uint64_t majorFaults;
  uint64_t done;     // write/read: accesses done (fewer than count when the loop stopped early)
  int64_t childPid;  // fork
  int64_t waitStatus;  // reap
  // Per-access arrays (offsets from the start of the control mapping).
  uint64_t pagesOff;   // uint32_t[capacity]: page list (Node writes)
  uint64_t latOff;     // uint64_t[capacity]: ns of each access
  uint64_t startOff;   // uint64_t[capacity]: CLOCK_MONOTONIC ns at which each access started
  uint64_t faultOff;   // uint32_t[capacity]: minor faults of each access
  uint64_t flagsOff;   // uint8_t[capacity]: kInCore
  uint64_t valueOff;   // uint64_t[capacity]: value read at offset 0 of the page (read op)

  uint32_t* pages() { return reinterpret_cast<uint32_t*>(base + pagesOff); }
  uint64_t* lat() { return reinterpret_cast<uint64_t*>(base + latOff); }
  uint64_t* starts() { return reinterpret_cast<uint64_t*>(base + startOff); }
  uint32_t* faultCounts() { return reinterpret_cast<uint32_t*>(base + faultOff); }
  uint8_t* flags() { return reinterpret_cast<uint8_t*>(base + flagsOff); }
  uint64_t* values() { return reinterpret_cast<uint64_t*>(base + valueOff); }
  Header* header() { return reinterpret_cast<Header*>(base); }
};

inline Slot* SlotAt(Header* h, uint32_t i) {
  return reinterpret_cast<Slot*>(reinterpret_cast<uint8_t*>(h) + h->slotOffset[i]);
}

// Top of slot i's stack (16-byte aligned); the stack grows down to a guard page.
inline uint8_t* StackTop(const Header* h, uint32_t i) { return h->stacks + (i + 1) * (kStackBytes + h->pageSize); }

// True when slot s is `root` or forked (directly or not) by root's process.
inline bool InSubtree(const Header* h, int32_t s, int32_t root) {
  while (s >= 0) {
    if (s == root) return true;
    s = h->parent[s];
  }
  return false;
}

// The clone() entry of every trace process (p0 included). `arg` is its Slot. Never returns.
int ProcessEntry(void* arg);

// p0InNode: runs the command in slot 0 on the calling (Node worker) thread, as p0's loop would.
// Map, fork, write, read and protect only (Node does not exit, exec or reap through a slot).
// Returns false with the slot's status and stage set.
bool ExecuteInNode(Slot* s);

}  // namespace proctree
}  // namespace cowlab
