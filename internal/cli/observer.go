package cli

import (
	"errors"

	"github.com/palisade-net/palisade/internal/conformance"
)

// newObserver returns the lab-backed observer for conformance --observed.
func newObserver(Streams) (conformance.Observer, error) {
	return nil, badInput(errors.New("--observed needs the lab, which is not available in this build yet; run without --observed for the engine's predictions"))
}
