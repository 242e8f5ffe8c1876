// Node as the child subreaper (PR_SET_CHILD_SUBREAPER): while a process tree exists, a trace
// process whose parent exited becomes Node's child instead of init's, so Node can reap it.
// Reference-counted across trees, and the setting Node had before is restored after the last.
#pragma once

namespace cowlab {
namespace subreaper {

// Becomes the subreaper (the first user turns it on). 0, or the errno of prctl.
int Acquire();

// Drops one use; the last restores the setting from before the first Acquire.
void Release();

}  // namespace subreaper
}  // namespace cowlab
