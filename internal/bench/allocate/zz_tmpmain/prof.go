package main

import (
	"os"
	"runtime/pprof"
)

func init() {
	if p := os.Getenv("CPUPROF"); p != "" {
		f, _ := os.Create(p)
		_ = pprof.StartCPUProfile(f)
		stopProf = func() { pprof.StopCPUProfile(); f.Close() }
	}
}

var stopProf = func() {}
