// Package sharing applies the GPU-wide settings that sharing a GPU needs
// (compute time slice, compute mode) and counts who relies on them, so that
// a setting is applied once and undone only when the last claim that holds
// it goes.
//
// Contract:
//   - Counting is derived, never stored: a claim holds a setting when its
//     checkpoint record says so (a Hold). The holders of a setting are the
//     records that hold it; there is no counter to drift from them.
//   - Record before change: Acquire hands the claim's holds to the
//     caller's record function, which must make them durable, before it
//     touches the GPU. Each hold carries the value the GPU had before the
//     first holder changed it (Previous); later holders copy it from an
//     earlier one, so whichever holder goes last can restore it.
//   - Undo on last release: Release restores Previous (Default where it
//     was unknown) only when no other claim holds the setting, and the
//     caller's forget function (deleting the claim's record) runs under the
//     same GPU lock, so no Acquire sees a hold that is half gone.
//   - Crash-safe by replay: every step is idempotent. Reconcile (at start
//     and in cleanup) re-applies what completed records hold; a record a
//     crash left half-way is undone with Release like any other.
//   - Conflicts are errors, not overrides: a claim that wants another value
//     of a setting some claim holds on the same GPU fails, naming both
//     claims, the GPU and the setting; nothing changes.
//   - The decisions (Plan, Restores, Wanted) are pure; Manager is the thin
//     shell that locks GPUs and calls the backend.
package sharing
