// Package checkpoint is the durable record of the claims this node has
// prepared, so that a restarted plugin knows what it handed out and can
// unprepare it, and a rebooted node knows what must be prepared again.
//
// Contract:
//   - Put, Delete and Replace return only once their change is on disk
//     (written to a temp file, fsynced, renamed over the checkpoint,
//     directory fsynced). Concurrent callers share writes (group commit), so
//     N parallel Puts cost far fewer than N fsyncs.
//   - A context already done when a change is asked for fails it without a
//     change. Once a change is in memory its caller waits for the write
//     regardless of the context (a bounded wait: local file writes).
//   - A failed write takes back the Puts and Replaces it carried, so Get and
//     List never show a record whose Put returned an error, and no later
//     write stores it. A failed Delete stays deleted in memory (see
//     Store.Delete). Either way the next write rewrites the whole file.
//   - A checkpoint written by any earlier gpudra version always loads: the
//     loader reads the format version first and dispatches to that version's
//     decoder; fields it does not know are ignored, so a file from a newer
//     gpudra with the same format version loads too. There is deliberately no
//     checksum: integrity comes from the atomic rename, and a checksum over
//     re-marshalled data breaks as soon as a field is added.
//   - A file that cannot be decoded is moved aside, never deleted, and the
//     store starts empty; Open and Reload report it so the caller can raise
//     an event.
//   - All file access goes through an fsutil.FS (WithFS), so tests can fail
//     any single step; the steps of a write are also failpoints.
//
// One process writes a checkpoint file at a time. Processes that take turns
// (under a node-wide lease) call Reload when they take over.
package checkpoint
