// Package allocate benchmarks the Kubernetes scheduler's DRA allocator
// (k8s.io/dynamic-resource-allocation/structured) over the ResourceSlices
// that gpudra's device model publishes for many simulated nodes, and over a
// minimal layout of the same GPUs, to show what the richer model costs the
// scheduler.
//
// Contract:
//   - Inputs are real: slices come from sim nodes through devicemodel.Build,
//     exactly what the kubelet plugin would publish; the DeviceClasses are
//     those of deployments/deviceclasses; the allocator is the scheduler's,
//     created with the feature set of a v1.37 scheduler's default gates.
//   - Claims are scheduled one after another, each seeing the devices of
//     the claims before it as taken, until the requested number is placed
//     or no node fits one more (the cluster is full).
//   - Results are deterministic except for timing: the same options place
//     the same claims on the same devices.
//
// What one claim costs here mirrors one pod with one claim in the
// scheduler's DynamicResources plugin:
//   - PreFilter: copy the set of allocated devices (the plugin's
//     GatherAllocatedState clones it for every pod) and build an allocator
//     over all slices (structured.NewAllocator indexes them by node).
//   - Filter: Allocate on nodes in order, starting where the previous claim
//     stopped (the scheduler's nextStartNodeIndex), until as many feasible
//     nodes are found as the scheduler looks for (numFeasibleNodesToFind:
//     every node below 100 nodes, else max(100, nodes*(50-nodes/125)%)), or
//     every node was tried. Options.FeasibleNodes overrides that number.
//   - Reserve: the allocation from the chosen node's Filter call is
//     recorded as taken.
//
// What is not modelled: scoring (the first feasible node found wins, where
// the scheduler would score them all), the scheduler's 16-way parallel
// Filter (nodes are filtered one after another, so latency is the sum of
// per-node work, not its critical path), other plugins (node resources,
// affinity), the API round trips of binding and of writing the claim's
// status, and DeviceTaintRules (there are none).
//
// Compare runs the two layouts in turns, one claim each, so that other load
// on a shared machine falls on both alike. They share the Go heap, so a
// collection that one run's garbage triggers can run during the other's
// claim; measured on a 2-core machine, interleaved ratios agreed with those
// of back-to-back runs, which swung far more with outside load.
package allocate
