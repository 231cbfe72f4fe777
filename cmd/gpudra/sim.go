package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// simNode is what the sim commands need to know about the simulated node:
// where its faults live and, to turn gpu-3 into a UUID, how it is built.
type simNode struct {
	stateDir string
	profile  string
	config   string
	nodeName string
}

func simCommand() *cobra.Command {
	node := &simNode{}
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Make simulated GPUs misbehave and look at their MIG devices: inject, list and clear faults, list MIG devices",
		Long: `A plugin running on the simulator (--sim-profile or --sim-config) applies the faults
recorded in its state directory (--sim-state-dir) at every inventory. These commands change
that directory; the plugin sees the change at its next inventory refresh.

A GPU is named as gpudra publishes it (gpu-<minor>), by index, or by UUID. A name or an
index is turned into a UUID with the node's inventory, so it needs the --sim-profile or
--sim-config and the --node-name the plugin runs with; a UUID needs neither.`,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&node.stateDir, "state-dir", "", "the simulated node's state directory, the plugin's --sim-state-dir (required)")
	f.StringVar(&node.profile, "sim-profile", "", "the node's simulated profile, to resolve GPU names; one of: "+strings.Join(sim.Profiles(), ", "))
	f.StringVar(&node.config, "sim-config", "", "the node's simulated inventory file, to resolve GPU names")
	f.StringVar(&node.nodeName, "node-name", os.Getenv("NODE_NAME"), "the node's name, to resolve GPU names (simulated UUIDs derive from it); default $NODE_NAME")
	_ = cmd.MarkPersistentFlagRequired("state-dir")
	cmd.AddCommand(simInjectCommand(node), simClearCommand(node), simFaultsCommand(node), simMIGCommand(node), simGPUsCommand(node))
	return cmd
}

func simInjectCommand(node *simNode) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inject",
		Short: "Inject a fault into a simulated GPU",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "lost <gpu>",
		Short: "Make a GPU fall off the bus (NVML's GPU_IS_LOST): it leaves the published devices until cleared",
		Example: `  gpudra sim inject lost gpu-3 --state-dir=/var/lib/kubelet/plugins/gpu.nvidia.com/sim --sim-profile=dgxh100 --node-name=node-a
  gpudra sim inject lost GPU-1b7c0e4e-... --state-dir=/var/lib/kubelet/plugins/gpu.nvidia.com/sim`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			uuid, err := node.resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := sim.InjectFault(node.stateDir, sim.Fault{Kind: sim.FaultLost, GPU: uuid}); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s is lost\n", describeGPU(args[0], uuid))
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "fail-compute-instance <gpu>",
		Short:   "Make the next compute-instance create on a GPU fail, as NVML can: the MIG device being cut is rolled back",
		Example: `  gpudra sim inject fail-compute-instance gpu-0 --state-dir=/var/lib/kubelet/plugins/gpu.nvidia.com/sim --sim-profile=dgxh100-mig --node-name=node-a`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			uuid, err := node.resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := sim.ArmComputeInstanceFailure(node.stateDir, uuid); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "the next compute-instance create on %s fails\n", describeGPU(args[0], uuid))
			return err
		},
	})
	return cmd
}

func simMIGCommand(node *simNode) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mig",
		Short: "Look at the simulated node's MIG devices (its hardware state)",
	}
	output := "table"
	list := &cobra.Command{
		Use:   "list",
		Short: "List each GPU's MIG mode and MIG devices as the simulated hardware holds them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := node.hardware()
			if err != nil {
				return err
			}
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			case "table":
				return printMIG(cmd.OutOrStdout(), st)
			}
			return fmt.Errorf("--output: %q is not json or table", output)
		},
	}
	list.Flags().StringVarP(&output, "output", "o", output, "table or json")
	cmd.AddCommand(list)
	return cmd
}

// printMIG prints one line per MIG device, and one for each GPU in MIG mode
// without any.
func printMIG(w io.Writer, st *sim.HardwareState) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "GPU\tMINOR\tMIG\tPROFILE\tPLACEMENT\tGI\tCI\tUUID")
	for _, g := range st.GPUs {
		mode := "off"
		if g.MIGEnabled {
			mode = "on"
		}
		if len(g.MIGDevices) == 0 {
			_, _ = fmt.Fprintf(tw, "%d\t%d\t%s\t-\t-\t-\t-\t-\n", g.Index, g.Minor, mode)
			continue
		}
		for _, d := range g.MIGDevices {
			uuid, ci := d.UUID, fmt.Sprint(d.CIID)
			if d.Incomplete {
				uuid, ci = "(incomplete: no compute instance)", "-"
			}
			_, _ = fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d+%d\t%d\t%s\t%s\n", g.Index, g.Minor, mode, d.Profile, d.PlacementStart, d.PlacementSize, d.GIID, ci, uuid)
		}
	}
	return tw.Flush()
}

func simGPUsCommand(node *simNode) *cobra.Command {
	return &cobra.Command{
		Use:   "gpus",
		Short: "List each GPU's settings as the simulated hardware holds them: MIG mode, compute mode, time slice",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := node.hardware()
			if err != nil {
				return err
			}
			return printGPUs(cmd.OutOrStdout(), st)
		},
	}
}

// hardware reads the node's hardware state, which must exist.
func (n *simNode) hardware() (*sim.HardwareState, error) {
	st, err := sim.ReadHardware(n.stateDir)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("no hardware state in %s yet: start the plugin (or gpudra discover with --sim-state-dir) on it first", n.stateDir)
	}
	return st, nil
}

// printGPUs prints one line per GPU with the settings sharing changes.
func printGPUs(w io.Writer, st *sim.HardwareState) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "GPU\tMINOR\tMIG\tCOMPUTE MODE\tTIME SLICE\tUUID")
	for _, g := range st.GPUs {
		mode := "off"
		if g.MIGEnabled {
			mode = "on"
		}
		_, _ = fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\n", g.Index, g.Minor, mode, g.ComputeMode, g.TimeSlice, g.UUID)
	}
	return tw.Flush()
}

func simClearCommand(node *simNode) *cobra.Command {
	all := false
	cmd := &cobra.Command{
		Use:   "clear [<gpu> | --all]",
		Short: "Clear the faults of one GPU, or of all; a lost GPU comes back at the plugin's next inventory",
		Example: `  gpudra sim clear gpu-3 --state-dir=/var/lib/kubelet/plugins/gpu.nvidia.com/sim --sim-profile=dgxh100 --node-name=node-a
  gpudra sim clear --all --state-dir=/var/lib/kubelet/plugins/gpu.nvidia.com/sim`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return errors.New("name one GPU or pass --all")
			}
			if all {
				if err := sim.ClearFaults(node.stateDir, ""); err != nil {
					return err
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "cleared all faults")
				return err
			}
			uuid, err := node.resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := sim.ClearFaults(node.stateDir, uuid); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "cleared the faults of %s\n", describeGPU(args[0], uuid))
			return err
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "clear every fault (also resets a faults file that cannot be read)")
	return cmd
}

func simFaultsCommand(node *simNode) *cobra.Command {
	output := "table"
	cmd := &cobra.Command{
		Use:   "faults",
		Short: "List the injected faults",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			faults, err := sim.ReadFaults(node.stateDir)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				if faults == nil {
					faults = []sim.Fault{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(faults)
			case "table":
				return printFaults(cmd.OutOrStdout(), faults)
			}
			return fmt.Errorf("--output: %q is not json or table", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", output, "table or json")
	return cmd
}

func printFaults(w io.Writer, faults []sim.Fault) error {
	if len(faults) == 0 {
		_, err := fmt.Fprintln(w, "no faults")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "KIND\tGPU\tSINCE")
	for _, f := range faults {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Kind, f.GPU, f.Time.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// resolve turns a GPU argument into its UUID. The inventory it resolves
// against is built without the state directory, so a lost GPU still has
// its name.
func (n *simNode) resolve(ctx context.Context, ref string) (string, error) {
	var inv *gpu.Inventory
	if n.profile != "" || n.config != "" {
		if n.nodeName == "" {
			return "", errors.New("--node-name (or $NODE_NAME) is required with --sim-profile or --sim-config: simulated GPU UUIDs derive from it")
		}
		b, err := sim.New(sim.Options{NodeName: n.nodeName, Profile: n.profile, ConfigFile: n.config})
		if err != nil {
			return "", err
		}
		defer func() { _ = b.Close() }()
		if inv, err = b.Inventory(ctx); err != nil {
			return "", err
		}
	}
	uuid, err := sim.ResolveGPU(inv, ref)
	if err != nil {
		return "", fmt.Errorf("GPU %s: %w", ref, err)
	}
	return uuid, nil
}

// describeGPU names a GPU as the user did and by UUID.
func describeGPU(ref, uuid string) string {
	if ref == uuid {
		return uuid
	}
	return fmt.Sprintf("%s (%s)", ref, uuid)
}
