// Package nodelease makes one process at a time the writer of a node's
// plugin state (checkpoint, CDI specs, and later MIG instances and MPS
// daemons), also while a DaemonSet rolling update runs an old and a new
// plugin pod side by side on the node.
//
// Contract:
//   - Holding the lease means holding an exclusive flock on <dir>/node.lock.
//     The kernel drops it when the process dies, however it dies, so a
//     crashed holder never blocks the node.
//   - Work that reads or changes node state runs between Enter and the exit
//     function it returns. Any number of calls of the holding process may
//     be inside at once: the lease excludes other processes, not other
//     goroutines (per-claim locks do that).
//   - A process that is not the holder and has work to do asks for the
//     lease by holding a shared flock on a request file
//     (<dir>/lease-want-<id>) while it waits. The holder watches for
//     requests; it stops admitting new work, lets the work inside finish,
//     and releases. A request file whose flock is free belongs to a dead
//     process and is removed.
//   - Every acquisition runs the OnAcquire hook before any work is
//     admitted: the state on disk may have been changed by the other
//     process since this one last held the lease, so in-memory views are
//     reloaded there.
//   - The lease is kept while idle. In steady state (one plugin process)
//     acquiring happens once, and Enter costs a mutex.
//   - Close stops admitting work, waits for the work inside and releases;
//     later Enter calls fail with ErrClosed.
package nodelease
