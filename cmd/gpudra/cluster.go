package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpudra/gpudra/internal/localcluster"
	"github.com/gpudra/gpudra/internal/localcluster/images"
)

// defaultClusterRoot holds all of the local cluster's state; `clean` removes it.
const defaultClusterRoot = "/var/lib/gpudra-localcluster"

func clusterCommand() *cobra.Command {
	c := &localcluster.Cluster{Full: true}
	repo := "."
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "A real single-node Kubernetes 1.37 on this machine (no Docker): build, up, down, status, clean, kubeconfig",
	}
	cmd.PersistentFlags().StringVar(&c.Root, "root", envOr("GPUDRA_CLUSTER_ROOT", defaultClusterRoot), "directory holding all cluster state")
	cmd.PersistentFlags().StringVar(&c.NodeName, "node-name", "gpudra-node", "name of the cluster's node")
	cmd.PersistentFlags().StringVar(&repo, "repo", ".", "gpudra source tree (for hack/localcluster/build.sh)")
	controlPlaneOnly := false
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	c.Log = progress

	cmd.AddCommand(&cobra.Command{
		Use:   "build",
		Short: "Build (or find cached) Kubernetes, etcd, containerd, runc and crictl binaries",
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := localcluster.Binaries(cmd.Context(), repo, localcluster.Components(true)...)
			if err != nil {
				return err
			}
			fmt.Println(bin)
			return nil
		},
	}, upCommand(c, &repo, &controlPlaneOnly, progress), imagesCommand(c, progress), &cobra.Command{
		Use:   "down",
		Short: "Stop every cluster process (by recorded PID), keeping state for inspection",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.Down(cmd.Context())
		},
	}, &cobra.Command{
		Use:   "clean",
		Short: "Stop the cluster and remove all its state, mounts, bridge and iptables chains",
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A control-plane-only cluster touched nothing outside its root.
			if s, err := localcluster.LoadState(c.Root); err == nil {
				c.Full = s.Full
			}
			return c.Clean(cmd.Context())
		},
	}, &cobra.Command{
		Use:   "status",
		Short: "Show which cluster components run",
		RunE: func(cmd *cobra.Command, _ []string) error {
			comps, s, err := c.Status()
			if err != nil {
				return fmt.Errorf("no cluster under %s: %w", c.Root, err)
			}
			fmt.Printf("API server https://%s:%d, node %s, kubeconfig %s\n", s.APIAddress, s.APIPort, s.NodeName, c.Kubeconfig())
			for _, st := range comps {
				state := "stopped"
				if st.Running {
					state = fmt.Sprintf("running (pid %d)", st.PID)
				}
				fmt.Printf("  %-24s %s\n", st.Name, state)
			}
			return nil
		},
	}, &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the path of the admin kubeconfig",
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := c.Kubeconfig()
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("no cluster under %s", c.Root)
			}
			fmt.Println(filepath.Clean(path))
			return nil
		},
	})
	return cmd
}

func upCommand(c *localcluster.Cluster, repo *string, controlPlaneOnly *bool, progress func(string, ...any)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the cluster from a clean state and wait until the node is Ready",
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			c.Full = !*controlPlaneOnly
			bin, err := localcluster.Binaries(cmd.Context(), *repo, localcluster.Components(c.Full)...)
			if err != nil {
				return err
			}
			c.BinDir = bin
			c.ImportImages = importBaseImages(progress)
			if err := c.Up(cmd.Context()); err != nil {
				return err
			}
			progress("cluster up in %.1fs; use: export KUBECONFIG=%s", time.Since(start).Seconds(), c.Kubeconfig())
			return nil
		},
	}
	cmd.Flags().BoolVar(controlPlaneOnly, "control-plane-only", false, "run only etcd and the API server, on 127.0.0.1 (for benchmarks and API tests; no root needed)")
	return cmd
}

// imageCacheDir holds built image tars between runs.
func imageCacheDir() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		base = filepath.Join(os.Getenv("HOME"), ".cache")
	}
	return filepath.Join(base, "gpudra", "images")
}

// importBaseImages builds the pause and busybox images and loads them into
// the cluster's containerd before the kubelet starts: there is no registry.
func importBaseImages(progress func(string, ...any)) func(ctx context.Context, ctr, addr string) error {
	return func(ctx context.Context, ctr, addr string) error {
		for _, build := range []func(context.Context, string) (string, error){images.Pause, images.Busybox} {
			tar, err := build(ctx, imageCacheDir())
			if err != nil {
				return err
			}
			if err := images.Import(ctx, ctr, addr, tar); err != nil {
				return err
			}
		}
		progress("imported %s and %s", images.PauseRef, images.BusyboxRef)
		return nil
	}
}

func imagesCommand(c *localcluster.Cluster, progress func(string, ...any)) *cobra.Command {
	var binaries []string
	tag := "localhost/gpudra/gpudra:dev"
	cmd := &cobra.Command{
		Use:   "load-driver",
		Short: "Build the gpudra image from built binaries and import it into the running cluster",
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := localcluster.LoadState(c.Root)
			if err != nil {
				return fmt.Errorf("no cluster under %s: %w", c.Root, err)
			}
			tar, err := images.Driver(cmd.Context(), imageCacheDir(), binaries, tag)
			if err != nil {
				return err
			}
			if err := images.Import(cmd.Context(), filepath.Join(s.BinDir, "ctr"), localcluster.ContainerdSocket(c.Root), tar); err != nil {
				return err
			}
			progress("imported %s", tag)
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&binaries, "binaries", []string{"_output/bin/gpudra-kubelet-plugin", "_output/bin/gpudra", "_output/bin/gpudra-sim-mps"}, "binaries to put under /usr/bin in the image")
	cmd.Flags().StringVar(&tag, "tag", tag, "image reference")
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
