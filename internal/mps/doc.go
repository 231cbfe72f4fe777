// Package mps runs CUDA MPS control daemons for claims: one process per
// daemon, with its pipe and log directories under the plugin's state
// directory, started so that it outlives the plugin.
//
// Contract:
//   - One control binary, two implementations: nvidia-cuda-mps-control from
//     the driver root on real GPUs, cmd/gpudra-sim-mps on the sim backend.
//     Both run in the foreground with -f, and both take the same commands
//     on the standard input of a client run (`echo quit |
//     nvidia-cuda-mps-control`), so everything here is exercised without a
//     GPU.
//   - A daemon is named by its directory (Daemon.ID), which the caller
//     records before Start. The pipe directory reaches a daemon whose PID
//     was never recorded (a crash between start and record), so Stop leaves
//     no orphan.
//   - A PID is trusted only with its start time (from /proc): Alive and the
//     last-resort kill in Stop check both, so a recycled PID is never
//     signalled.
//   - Start returns once the daemon answers a command, with its limits set;
//     a daemon that exits or never answers is an error carrying what it
//     printed, and its directory is removed.
//   - Stop is idempotent: quit, wait, kill if it will not go, remove the
//     directories. A missing daemon is not an error.
package mps
