package nvml

import (
	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/contract"
)

// TestBackendContract runs the gpu.Backend contract on a mock DGX H100 whose
// lost GPUs answer ERROR_GPU_IS_LOST to every call.
func TestBackendContract(t *testing.T) {
	contract.Run(t, func(t *testing.T) contract.Node {
		srv := dgxh100.New()
		fillMockGaps(t, srv)
		recoverers := map[int]func(){}
		return contract.Node{
			Backend: newTestBackend(t, srv),
			LoseGPU: func(t *testing.T, g gpu.GPU) {
				recoverers[g.Index] = loseDevice(srv.Devices[g.Index].(*server.Device))
			},
			RecoverGPU: func(t *testing.T, g gpu.GPU) {
				recoverers[g.Index]()
				delete(recoverers, g.Index)
			},
		}
	})
}

// TestMIGContract runs the MIG contract on a mock DGX H100 with GPUs 0 and
// 1 in MIG mode (see migHardware for what the mock is taught). Reopen is a
// new backend over the same mock, as a restarted plugin opens NVML again.
func TestMIGContract(t *testing.T) {
	contract.RunMIG(t, func(t *testing.T) contract.MIGNode {
		srv := dgxh100.New()
		fillMockGaps(t, srv)
		hw := newMIGHardware(t, srv, 0, 1)
		return contract.MIGNode{
			Backend: newTestBackend(t, srv),
			Reopen:  func(t *testing.T) contract.MIGBackend { return newTestBackend(t, srv) },
			FailNextComputeInstance: func(t *testing.T, parent string) {
				dev, ret := srv.DeviceGetHandleByUUID(parent)
				if ret != gonvml.SUCCESS {
					t.Fatalf("no GPU %s: %v", parent, ret)
				}
				hw.failNextComputeInstance(dev.(*server.Device))
			},
			LeaveIncomplete: func(t *testing.T, s gpu.MIGSlot) { hw.leaveIncomplete(t, srv, s) },
		}
	})
}
