package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{Use: "gpudra", SilenceUsage: true}
	bench := &cobra.Command{Use: "bench"}
	bench.AddCommand(benchAllocateCommand())
	root.AddCommand(bench)
	err := root.Execute()
	stopProf()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
