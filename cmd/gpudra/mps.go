package main

import (
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/mps"
)

func mpsLauncherCommand() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "mps-launcher",
		Short: "Start MPS control daemons for the kubelet plugin, so that they outlive its restarts",
		Long: `Runs in a container next to the kubelet plugin's, in a pod that shares one PID
namespace (the chart does this). The plugin asks it over --socket to start each claim's MPS
control daemon; the daemons are this process's children, so a restart of the plugin's
container leaves them running, and the restarted plugin adopts them by PID and start time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			ctx = klog.NewContext(ctx, klog.Background().WithName("mps-launcher"))
			return mps.ServeLauncher(ctx, socket)
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "unix socket to serve (the plugin's --mps-launcher-socket)")
	_ = cmd.MarkFlagRequired("socket")
	return cmd
}
