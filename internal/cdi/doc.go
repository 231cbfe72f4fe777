// Package cdi writes the Container Device Interface specs through which the
// container runtime hands a claim's devices to its containers.
//
// Contract:
//   - One spec file per claim in the CDI directory, named from vendor, class
//     and claim UID; one CDI device per allocated device, named
//     "<claimUID>-<deviceName>", so two claims never share a CDI name.
//   - Writes are atomic and durable (temp file, fsync, rename, directory
//     fsync): the runtime sees the old spec or the new one, never a partial
//     file. The same input always yields the same bytes, so a repeated
//     prepare rewrites an identical file.
//   - A spec that the CDI library would reject is never written; the error
//     names the claim and the device.
//   - What a device needs inside the container comes from an Editor: the
//     sim backend's SimEditor here, the NVIDIA toolkit's in package nvcdi.
package cdi
