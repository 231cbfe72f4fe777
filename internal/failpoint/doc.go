// Package failpoint marks the steps of prepare and unprepare where a crash
// must leave a state the next start can finish or undo, so that the crash
// harness (`gpudra bench crash`) can kill the plugin exactly there.
//
// Contract:
//   - Hit(name) is a no-op in normal builds: the function body is empty and
//     the compiler removes the call. Only binaries built with the build tag
//     "failpoints" (the crash harness builds its own) can crash.
//   - In such a binary, GPUDRA_FAILPOINT="<name>:<n>" makes the n-th Hit of
//     <name> (counting from 1) kill the process with SIGKILL, as the kernel
//     would on an OOM or a node-level kill: no deferred function runs, no
//     buffer is flushed (PID 1 of a container, which the kernel shields from
//     that signal, exits with status 137 instead).
//   - GPUDRA_FAILPOINT_ONCE=<file> makes the crash happen only while file
//     does not exist: the crash creates it (with the failpoint's name) just
//     before the kill, so a process restarted with the same environment, as
//     the kubelet restarts a container, does not crash again.
//   - GPUDRA_FAILPOINT_LOG=<file> appends the name of every Hit to file (one
//     per line, O_APPEND) before acting on it, so the harness can tell which
//     steps a run went through.
//   - Names are constants in the package that calls Hit, of the form
//     "<package>/<step>", e.g. "cdi/after-temp-write".
package failpoint
