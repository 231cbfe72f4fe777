// Command gpudra is the developer and operator tool: `gpudra discover` prints
// the ResourceSlices this node would publish.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gpudra/gpudra/internal/backend"
	"github.com/gpudra/gpudra/internal/discover"
	"github.com/gpudra/gpudra/internal/migflags"
)

func main() {
	root := &cobra.Command{
		Use:           "gpudra",
		Short:         "gpudra developer and operator tool",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(discoverCommand(), clusterCommand(), benchCommand(), simCommand(), mpsLauncherCommand())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gpudra:", err)
		os.Exit(1)
	}
}

func discoverCommand() *cobra.Command {
	var be backend.Options
	var mig migflags.Flags
	opts := discover.Options{DriverName: "gpu.nvidia.com"}
	cmd := &cobra.Command{
		Use:   "discover",
		Short: "Print the ResourceSlices this node would publish",
		Example: `  gpudra discover --sim-profile=dgxh100 --node-name=node-a -o yaml
  gpudra discover --sim-profile=dgxh100-mig --mig-mode=dynamic --node-name=node-a
  gpudra discover --driver-root=/run/nvidia/driver -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.NodeName == "" {
				host, err := os.Hostname()
				if err != nil {
					return fmt.Errorf("no --node-name and no hostname: %w", err)
				}
				opts.NodeName = host
			}
			be.NodeName = opts.NodeName
			var err error
			if opts.MIGMode, err = mig.ParsedMode(); err != nil {
				return err
			}
			if opts.Dynamic, err = mig.Dynamic(); err != nil {
				return err
			}
			b, err := backend.Open(be)
			if err != nil {
				return err
			}
			defer func() { _ = b.Close() }()
			return discover.Run(cmd.Context(), b, opts, cmd.OutOrStdout())
		},
	}
	be.AddFlags(cmd.Flags())
	mig.AddFlags(cmd.Flags(), false)
	cmd.Flags().StringVar(&opts.NodeName, "node-name", os.Getenv("NODE_NAME"), "node name (pool name; seeds simulated UUIDs); default $NODE_NAME or the hostname")
	cmd.Flags().StringVar(&opts.DriverName, "driver-name", opts.DriverName, "DRA driver name")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "yaml", "output format: json or yaml")
	return cmd
}
