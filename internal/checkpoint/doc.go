// Package checkpoint is the durable record of the claims this node has
// prepared, so that a restarted plugin knows what it handed out and can
// unprepare it, and a rebooted node knows what must be prepared again.
//
// Contract:
//   - Put and Delete return only once their change is on disk (written to a
//     temp file, fsynced, renamed over the checkpoint, directory fsynced).
//     Concurrent callers share writes (group commit), so N parallel Puts cost
//     far fewer than N fsyncs.
//   - A checkpoint written by any earlier gpudra version always loads: the
//     loader reads the format version first and dispatches to that version's
//     decoder; fields it does not know are ignored, so a file from a newer
//     gpudra with the same format version loads too. There is deliberately no
//     checksum: integrity comes from the atomic rename, and a checksum over
//     re-marshalled data breaks as soon as a field is added.
//   - A file that cannot be decoded is moved aside, never deleted, and the
//     store starts empty; Open reports it so the caller can raise an event.
//
// One process owns a checkpoint file at a time.
package checkpoint
