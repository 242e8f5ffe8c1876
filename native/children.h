// The registry of live child processes. Every mechanism that forks (the fork probe, the spawn
// probe, the kernel engine) registers a child right after fork() in the parent and unregisters
// it just before reaping it, so `killAllChildren()` (Ctrl-C in `cowlab run`) can SIGKILL
// every child the addon has alive without ever signalling a pid that was already reaped (and
// possibly reused): Kill and Unregister take the same lock, and reaping comes after Unregister.
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

// SIGKILLs every registered child and bumps the kill epoch; returns how many were signalled.
int KillAll();

// How many times KillAll ran. A long parent-side loop (paced writes, a hold) saves it at
// the start and stops when it changes: the run was interrupted.
uint64_t KillEpoch();

}  // namespace children
}  // namespace cowlab
