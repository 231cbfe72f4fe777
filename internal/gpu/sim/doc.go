// Package sim is the simulated GPU backend: a faithful, mutable model of a
// node's NVIDIA GPUs for machines that have none (laptops, CI runners, the
// local test cluster).
//
// Contract:
//   - A Backend implements gpu.Backend and behaves like the NVML backend as
//     far as the rest of gpudra can tell: GPUs in PCI bus ID order, MIG
//     profiles and placements of the real products (taken from go-nvml's
//     mock GPU configs), MIG profile names computed by go-nvlib exactly as
//     on hardware.
//   - Identity is deterministic: GPU and MIG UUIDs derive from the node
//     name and the device's position, so a restarted plugin sees the same
//     devices and two simulated nodes never share a UUID.
//   - State is real: MIG mode, MIG devices and compute mode change through
//     the methods below and are validated the way the driver would refuse
//     them (overlapping placements, instance limits, MIG mode off).
//     Inventory returns deep copies; callers never alias the model.
//   - A node is described by a named profile (Profiles) or an inventory
//     file (LoadConfig); bad files are rejected with the file, the GPU
//     entry and the field named.
//   - Faults are injected from outside the process, as hardware breaks:
//     InjectFault and ClearFaults (used by `gpudra sim`) record them in a
//     state directory under a lock, and a Backend opened with that
//     Options.StateDir applies them on every Inventory. A lost GPU leaves
//     Inventory.GPUs for Inventory.Unavailable and refuses operations; once
//     cleared it returns unchanged. A faults file that cannot be parsed
//     fails Inventory with the file and the field named.
//
// All methods are safe for concurrent use.
package sim
