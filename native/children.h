// The registry of live child processes. Every mechanism that forks (the spawn
// probe, the kernel engine) registers a child right after fork() in the parent and unregisters
// it just before reaping it, so `killAllChildren()` (Ctrl-C in `cowlab run`) can SIGKILL
// every child the addon has alive without ever signalling a pid that was already reaped (and
// possibly reused): Kill and Unregister take the same lock, and reaping comes after Unregister.
//
// An entry is a process or a process group. The kernel engine registers the group its p0
// leads (every trace process is in it, at any depth of the tree), killed with kill(-pgid).
// A group id stays allocated while any member exists, alive or zombie, so the entry must go
// before the reap that may leave the group empty: ReapInGroup does that reap under the lock.
//
// Callers: the parent side only (a worker thread after fork, or the JS thread); never a
// forked child. No allocation: a fixed table.
#pragma once
#include <sys/types.h>

#include <cstdint>

namespace cowlab {
namespace children {

// Adds a live child. False when the table is full (the caller still reaps it; it is only
// out of reach of KillAll).
bool Register(pid_t pid);

// Removes a child; call it before waitpid() reaps it.
void Unregister(pid_t pid);

// Adds a live process group (killed as -pgid). False when the table is full.
bool RegisterGroup(pid_t pgid);

// Removes a process group; call it before the reaps that empty the group.
void UnregisterGroup(pid_t pgid);

// waitpid(pid, status, WNOHANG) for a member of registered group `pgid`, under the registry
// lock; when that reap left the group empty, the group's entry is removed before the lock is
// released, so KillAll never signals a group id that could be reused. Returns waitpid's result
// (errno set when it is -1).
pid_t ReapInGroup(pid_t pgid, pid_t pid, int* status);

// SIGKILLs every registered child and process group and bumps the kill epoch; returns how many
// entries were signalled.
int KillAll();

// How many times KillAll ran. A long parent-side loop (paced writes, a hold) saves it at
// the start and stops when it changes: the run was interrupted.
uint64_t KillEpoch();

}  // namespace children
}  // namespace cowlab
