package cli

import (
	"bytes"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/render"
	"github.com/palisade-net/palisade/internal/truth"
)

// TestLabSkipsWorkloads: the lab has no controllers, so a Deployment read
// with the pods is dropped with one warning, never built as a pod.
func TestLabSkipsWorkloads(t *testing.T) {
	var errb bytes.Buffer
	in := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: nginx}]}\n---\n" +
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}\n"
	objs, err := readObjects(Streams{In: strings.NewReader(in), Out: io.Discard, Err: &errb}, []string{"-"})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Kind != "Pod" || objs[0].Key.Name != "web" {
		t.Errorf("objects = %v, want pod web only", objs)
	}
	want := "warning: the lab runs no controllers: skipped 1 workloads (Deployment default/api); give their pods as Pod manifests\n"
	if errb.String() != want {
		t.Errorf("stderr = %q, want %q", errb.String(), want)
	}
}

// TestWriteLabMatrix: lab matrix prints the observed grids as matrix does
// (aligned, with its legend), then per port whether the lab agreed with
// the prediction; a difference is what makes it exit 1.
func TestWriteLabMatrix(t *testing.T) {
	pods := []string{"default/a", "default/bb"}
	grid := func(port uint16, allow [][]bool) *truth.Grid {
		return &truth.Grid{Port: port, Protocol: model.TCP, Pods: pods, Allow: allow}
	}
	tcp := func(port uint16) render.Probe { return render.Probe{Port: port, Protocol: model.TCP} }
	legend := "rows are sources, columns destinations: . allowed, X denied\nports probed: "
	tests := []struct {
		name   string
		fam    netip.Addr
		res    []probeResult
		differ bool
		want   string
	}{
		{"agrees", netip.IPv4Unspecified(), []probeResult{{Probe: tcp(80), Observed: grid(80, [][]bool{{true, false}, {true, true}})}}, false,
			"80/TCP\n-           default/a  default/bb\ndefault/a   .          X\ndefault/bb  .          .\n\n" +
				legend + "80/TCP (observed in the lab)\n\n80/TCP: observed = predicted\n"},
		{"differs, IPv6, a skipped port", netip.IPv6Unspecified(), []probeResult{
			{Probe: tcp(80), Observed: grid(80, [][]bool{{true, true}, {false, true}}),
				Diffs: []truth.Pair{{From: "default/a", To: "default/bb", Want: false, Got: true}}},
			{Probe: render.Probe{Port: 9, Protocol: model.SCTP}}}, true,
			"80/TCP\n-           default/a  default/bb\ndefault/a   .          .\ndefault/bb  X          .\n\n" +
				legend + "80/TCP (observed in the lab)\naddresses: IPv6\n\n" +
				"80/TCP: differs from the prediction: default/a -> default/bb: want deny, got allow\n" +
				"9/SCTP: skipped (the lab cannot probe SCTP on this kernel)\n"},
		{"every port skipped", netip.IPv4Unspecified(), []probeResult{{Probe: render.Probe{Port: 9, Protocol: model.SCTP}}}, false,
			"9/SCTP: skipped (the lab cannot probe SCTP on this kernel)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			differ, err := writeLabMatrix(&b, tt.fam, tt.res)
			if err != nil || differ != tt.differ || b.String() != tt.want {
				t.Errorf("differ %v, err %v, output:\n%s\nwant differ %v, output:\n%s", differ, err, b.String(), tt.differ, tt.want)
			}
		})
	}
}
