// Package discover prints the ResourceSlices a node would publish, without a
// cluster: how a user checks a node before installing gpudra, and how we
// check the NVML backend on real GPUs against nvidia-smi.
package discover

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"

	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu"
)

// Options for one discovery.
type Options struct {
	DriverName string
	NodeName   string
	// Output is "json" or "yaml".
	Output string
}

// Run reads the backend's inventory and writes the node's ResourceSliceList
// to w.
func Run(ctx context.Context, b gpu.Backend, opts Options, w io.Writer) error {
	if opts.Output != "json" && opts.Output != "yaml" {
		return fmt.Errorf("output format %q: want json or yaml", opts.Output)
	}
	inv, err := b.Inventory(ctx)
	if err != nil {
		return fmt.Errorf("read GPU inventory: %w", err)
	}
	devices, err := devicemodel.Build(inv)
	if err != nil {
		return fmt.Errorf("build devices: %w", err)
	}
	list := devicemodel.ResourceSlices(opts.DriverName, opts.NodeName, devicemodel.DriverResources(opts.NodeName, devices))
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if opts.Output == "yaml" {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
	} else {
		data = append(data, '\n')
	}
	_, err = w.Write(data)
	return err
}
