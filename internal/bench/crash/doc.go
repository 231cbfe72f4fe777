// Package crash is the crash-injection harness behind `gpudra bench crash`:
// it kills the node plugin at its failpoints (see internal/failpoint) in the
// middle of the kubelet's calls, restarts it, replays what the kubelet would
// retry, and checks what the plugin left on disk.
//
// Contract:
//   - Runs are independent and seed-driven: each gets fresh plugin, CDI and
//     registrar directories and fresh claims (in one namespace of one API
//     server for the whole Run), and makes every random choice — failpoint
//     and hit count, the sequence of kubelet calls and API changes, the
//     plugin's cleanup interval — from its own seed, which is printed with
//     every violation.
//   - Only steps that really happen are targeted: a clean calibration run
//     with GPUDRA_FAILPOINT_LOG lists the failpoints and how often each is
//     hit; a run picks one of those names and a hit count up to that.
//   - The harness plays the kubelet and the scheduler, nothing more: claims
//     get disjoint allocations written straight into their status, calls go
//     over the plugin's real gRPC socket, and after a crash every claim whose
//     last prepare or unprepare did not return success is asked again.
//   - Invariants (see invariants.go) are checked on the files on disk, read
//     with the checkpoint and CDI packages on copies, so the check never
//     changes the state it looks at. A violation names the run, its seed,
//     the failpoint and what was found; the harness never "fixes" state.
//   - Every process the harness starts is stopped by PID, every directory it
//     creates is removed (or, with FailedDir, a failed run's files are
//     copied there first for inspection).
//
// With Options.SimMPS (sharing mode) claims are time-sliced or get MPS
// daemons, and the checks include the simulated GPUs' settings and the
// daemons' directories and processes; daemons a failed run leaves are
// killed by PID when the run ends.
//
// Cluster and Plugin are also what `gpudra bench soak` uses to run the
// plugin against a real API server.
package crash
