// Package nvcdi is the cdi.Editor for real NVIDIA nodes. It asks the NVIDIA
// Container Toolkit's nvcdi library what a container needs to use the
// node's driver (control device nodes, driver libraries and binaries, IPC
// sockets, firmware, hooks) and what each GPU or MIG device adds (its device
// nodes and, for MIG, the GPU- and compute-instance capability nodes).
//
// Contract:
//   - The editor never calls NVML after a failed nvml.Init: NewEditor checks
//     Init first and fails, and every later NVML use goes through nvcdi,
//     which returns an error as soon as Init fails.
//   - The claim-independent edits are computed once per driver version (the
//     loaded kernel module's, see Options.DriverVersion), with a toolkit set
//     up for that version, and shared by every claim; a failed or incomplete
//     computation is not cached, nor one made while the version is unknown.
//   - Returned edits belong to the caller: they are never shared with another
//     call.
//   - Device edits name the device and UUID in every error, and are refused
//     when the device nodes the device needs are missing from the dev root,
//     so a container is never started without its GPU.
//   - Host paths are rooted at the host's driver and dev roots (see
//     Options.HostDriverRoot); container paths are absolute.
package nvcdi
