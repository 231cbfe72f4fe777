package nvcdi

import (
	"fmt"

	"k8s.io/klog/v2"
)

// toolkitLogger adapts a klog logger to the printf-style logger the NVIDIA
// Container Toolkit expects. The toolkit's levels are pushed down: it logs
// every file it selects at "info" and every optional file a node lacks
// (Wayland, X11, IMEX libraries) as a warning, so only its errors show at
// the default verbosity.
type toolkitLogger struct {
	logger klog.Logger
}

func (l toolkitLogger) Errorf(format string, args ...any) {
	l.logger.Error(nil, fmt.Sprintf(format, args...))
}

func (l toolkitLogger) Warningf(format string, args ...any) {
	l.logger.V(2).Info(fmt.Sprintf(format, args...), "severity", "warning")
}

func (l toolkitLogger) Infof(format string, args ...any) {
	l.logger.V(4).Info(fmt.Sprintf(format, args...))
}

func (l toolkitLogger) Debugf(format string, args ...any) {
	l.logger.V(5).Info(fmt.Sprintf(format, args...))
}

func (l toolkitLogger) Tracef(format string, args ...any) {
	l.logger.V(6).Info(fmt.Sprintf(format, args...))
}
