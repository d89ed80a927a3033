package deploy

import (
	"io/fs"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// release is the image tag deploy/ installs: a pinned release, the same
// in the DaemonSet and in the kustomization (hack/images/build.sh builds
// this tag by default).
var release = regexp.MustCompile(`^v\d+\.\d+\.\d+$`)

func read(t *testing.T, name string, v any) {
	t.Helper()
	b, err := Files.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// No manifest names :latest (or an image without a tag); the DaemonSet's
// image and the kustomization's images pin the same release tag, and
// IfNotPresent goes only with it.
func TestNoLatest(t *testing.T) {
	fs.WalkDir(Files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := Files.ReadFile(name)
		if strings.Contains(string(b), ":latest") {
			t.Errorf("%s mentions :latest", name)
		}
		return nil
	})
	var ds appsv1.DaemonSet
	read(t, "daemonset.yaml", &ds)
	var kust struct {
		Images []struct {
			Name, NewName, NewTag, Digest string
		} `json:"images"`
		APIVersion, Kind string
		Resources        []string
	}
	read(t, "kustomization.yaml", &kust)
	if len(kust.Images) != 1 || !release.MatchString(kust.Images[0].NewTag) {
		t.Fatalf("kustomization.yaml images: %+v, want one with a release newTag", kust.Images)
	}
	for _, c := range append(ds.Spec.Template.Spec.InitContainers, ds.Spec.Template.Spec.Containers...) {
		repo, tag, ok := strings.Cut(c.Image, ":")
		if !ok || !release.MatchString(tag) {
			t.Errorf("container %s: image %q, want a release tag", c.Name, c.Image)
			continue
		}
		if repo != kust.Images[0].Name || tag != kust.Images[0].NewTag {
			t.Errorf("container %s: image %q, kustomization sets %s:%s", c.Name, c.Image, kust.Images[0].Name, kust.Images[0].NewTag)
		}
		if c.ImagePullPolicy != corev1.PullIfNotPresent {
			t.Errorf("container %s: pull policy %q, want IfNotPresent (the tag is pinned)", c.Name, c.ImagePullPolicy)
		}
	}
}

// The DaemonSet runs on the host's network: its metrics address is
// loopback, and its probes ask 127.0.0.1 at that port (the kubelet probes
// a hostNetwork pod from the host's namespace). It declares no port (a
// hostPort, with hostNetwork).
func TestMetricsOnLoopback(t *testing.T) {
	var ds appsv1.DaemonSet
	read(t, "daemonset.yaml", &ds)
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork {
		t.Skip("not on the host network")
	}
	for k := range ds.Spec.Template.Annotations {
		if strings.HasPrefix(k, "prometheus.io/") {
			t.Errorf("annotation %s: nothing outside the node can scrape a loopback address", k)
		}
	}
	c := spec.Containers[0]
	var addr string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--metrics-addr="); ok {
			addr = v
		}
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		t.Fatalf("--metrics-addr=%q, want a loopback address and port", addr)
	}
	if len(c.Ports) > 0 {
		t.Errorf("ports %v: with hostNetwork they are hostPorts", c.Ports)
	}
	for what, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: %+v, want httpGet", what, p)
			continue
		}
		g := p.HTTPGet
		if g.Host != ap.Addr().String() || g.Port.IntValue() != int(ap.Port()) {
			t.Errorf("%s probe asks %s:%s, the agent listens on %s", what, g.Host, g.Port.String(), addr)
		}
	}
}
