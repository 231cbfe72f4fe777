// Command gpudra-sim-mps is the sim backend's stand-in for
// nvidia-cuda-mps-control: with -f it runs a control daemon in the
// foreground on $CUDA_MPS_PIPE_DIRECTORY; without, it sends the commands on
// its standard input to that daemon. See internal/mps/simmps.
package main

import (
	"os"

	"github.com/gpudra/gpudra/internal/mps/simmps"
)

func main() {
	os.Exit(simmps.Main(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}
