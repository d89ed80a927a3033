package cli

import (
	"bytes"
	"strings"
	"testing"
)

// The agent serves metrics, health and profiles on loopback unless told
// otherwise: it runs in the host's network namespace.
func TestAgentMetricsAddrDefault(t *testing.T) {
	var out, errb bytes.Buffer
	Main([]string{"agent", "-h"}, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	help := out.String() + errb.String()
	if !strings.Contains(help, `(default "127.0.0.1:9484")`) {
		t.Errorf("agent -h does not show the loopback default for --metrics-addr:\n%s", help)
	}
	for host, want := range map[string]bool{
		"127.0.0.1": true, "::1": true, "localhost": true, "127.0.0.53": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}
