package nvml

import (
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
