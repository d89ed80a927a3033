// Package benchrun is what the benchmark programs' mains share: a run
// that Ctrl-C or SIGTERM cancels, with the cleanup that keeps the machine
// free of anything named palisade- whether the run ends, fails or is
// interrupted.
package benchrun

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"
)

// Run calls stale (to remove what an earlier run killed hard left
// behind), then run with a context that an interrupt or SIGTERM cancels,
// then cleanup, also if run panics. It returns the exit code: 0, 1 if
// run failed, 130 if it was interrupted.
func Run(stale, cleanup func(), run func(context.Context) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := 0
	func() {
		defer cleanup()
		stale()
		if err := run(ctx); err != nil {
			log.Printf("error: %v", err)
			code = 1
		}
	}()
	if ctx.Err() != nil {
		code = 130
	}
	return code
}
