package lab

import (
	"context"
	"os/signal"
	"syscall"
)

// signalContext returns a context cancelled by SIGINT or SIGTERM, for a
// daemon's main.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}
