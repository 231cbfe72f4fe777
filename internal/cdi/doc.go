// Package cdi writes the Container Device Interface specs through which the
// container runtime hands a claim's devices to its containers.
//
// Contract:
//   - One spec file per claim in the CDI directory, named from vendor, class
//     and claim UID; one CDI device per allocated device, named
//     "<claimUID>-<deviceName>", so two claims never share a CDI name.
//   - Each spec says which claim it is for (spec annotations: UID,
//     namespace, name) and each device its DRA device name, request and pool
//     (device annotations, keys Annotation*), so that ReadClaimSpec can
//     rebuild a lost checkpoint. The annotations need CDI 0.6.0; the version
//     written is the oldest that carries what the spec uses.
//   - Writes are atomic and durable (temp file, fsync, rename, directory
//     fsync): the runtime sees the old spec or the new one, never a partial
//     file; a temp file has a leading dot and a name the runtime does not
//     read, and RemoveStaleTempFiles removes those a crash left. The same
//     input always yields the same bytes, so a repeated prepare rewrites an
//     identical file.
//   - A spec that the CDI library would reject is never written; the error
//     names the claim and the device.
//   - All file access goes through an fsutil.FS (WithFS), so tests can fail
//     any single step; the steps of a write and of a delete are failpoints.
//   - What a device needs inside the container comes from an Editor: the
//     sim backend's SimEditor here, the NVIDIA toolkit's in package nvcdi.
package cdi
