// Package discover prints the ResourceSlices a node would publish, without a
// cluster: how a user checks a node before installing gpudra, and how we
// check the NVML backend on real GPUs against nvidia-smi.
package discover

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"k8s.io/dynamic-resource-allocation/resourceslice"
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
	// MIGMode and Dynamic say how GPUs in MIG mode are published.
	MIGMode devicemodel.MIGMode
	Dynamic devicemodel.DynamicOptions
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
	var res *resourceslice.DriverResources
	if opts.MIGMode == devicemodel.MIGModeDynamic {
		p, err := devicemodel.BuildDynamic(inv, opts.Dynamic)
		if err != nil {
			return fmt.Errorf("build dynamic-MIG devices: %w", err)
		}
		res = p.DriverResources(opts.NodeName)
	} else {
		devices, err := devicemodel.Build(inv)
		if err != nil {
			return fmt.Errorf("build devices: %w", err)
		}
		res = devicemodel.DriverResources(opts.NodeName, devices)
	}
	list := devicemodel.ResourceSlices(opts.DriverName, opts.NodeName, res)
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
