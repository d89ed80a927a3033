package dataplane

import (
	"context"
	"fmt"
	"math/rand"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// TestKernelChurn applies random changes (pods coming, going, relabelled,
// policies added and removed, namespaces relabelled) one incremental Apply
// at a time, and checks after each that the kernel holds exactly the
// compiled ruleset, read back with Read.
func TestKernelChurn(t *testing.T) {
	_, path := newNetns(t)
	en, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer en.Close()
	rng := rand.New(rand.NewSource(1))
	c := standardCluster()
	e := engine.FromCluster(c)
	ctx := context.Background()
	pods := []string{"a", "b", "c", "d"}
	labels := []string{"a", "b", "c"}
	policy := func(i int) *model.Policy {
		ns := []string{"x", "y", "z"}[i%3]
		p := &model.Policy{Namespace: ns, Name: fmt.Sprintf("p%d", i), PodSelector: *sel("pod", labels[i%3]), Ingress: true}
		switch i % 4 {
		case 0:
			p.IngressRules = []model.Rule{{Peers: []model.Peer{{PodSelector: sel("pod", labels[(i+1)%3])}}, Ports: []model.Port{{Protocol: model.TCP, Port: 80}}}}
		case 1:
			p.Egress = true
			p.EgressRules = []model.Rule{{Peers: []model.Peer{{NamespaceSelector: sel("team", "blue")}}, Ports: []model.Port{{Protocol: model.UDP, Name: "serve-81-udp"}}}}
		case 2:
			p.IngressRules = []model.Rule{{Peers: []model.Peer{{IPBlock: &model.IPBlock{CIDR: prefix("10.10.0.0/16"), Except: []netip.Prefix{prefix(fmt.Sprintf("10.10.%d.0/24", 1+i%3))}}}}}}
		case 3:
			p.IngressRules = []model.Rule{{Ports: []model.Port{{Protocol: model.TCP, Name: "serve-80-tcp"}, {Protocol: model.SCTP, Port: 81, EndPort: 90}}}}
		}
		return p
	}
	changed := 0
	defer func() { t.Logf("%d of 200 steps changed the kernel", changed) }()
	for step := 0; step < 200; step++ {
		var what string
		switch rng.Intn(5) {
		case 0, 1:
			ns, name := []string{"x", "y", "z"}[rng.Intn(3)], pods[rng.Intn(len(pods))]
			p := &model.Pod{Namespace: ns, Name: name, Node: []string{"node-1", "node-1", "node-2"}[rng.Intn(3)],
				Labels: map[string]string{"pod": labels[rng.Intn(3)]},
				IPs:    []netip.Addr{netip.AddrFrom4([4]byte{10, 10, byte(1 + rng.Intn(3)), byte(1 + rng.Intn(20))})},
				Ports:  c.Pods[model.Key{Namespace: "x", Name: "a"}].Ports}
			if rng.Intn(2) == 0 {
				p.IPs = append(p.IPs, netip.MustParseAddr(fmt.Sprintf("fd00:10:10:%d::%d", 1+rng.Intn(3), 1+rng.Intn(20))))
			}
			if e.PodByIP(p.IPs[0]) != nil && e.PodByIP(p.IPs[0]).Key() != p.Key() {
				continue // keep addresses unique
			}
			e.UpsertPod(p)
			what = "upsert pod " + p.Key().String()
		case 2:
			k := model.Key{Namespace: []string{"x", "y", "z"}[rng.Intn(3)], Name: pods[rng.Intn(len(pods))]}
			e.DeletePod(k)
			what = "delete pod " + k.String()
		case 3:
			p := policy(rng.Intn(8))
			if rng.Intn(3) == 0 {
				e.DeletePolicy(p.Key())
				what = "delete policy " + p.Key().String()
			} else {
				e.UpsertPolicy(p)
				what = "upsert policy " + p.Key().String()
			}
		case 4:
			ns := []string{"x", "y", "z"}[rng.Intn(3)]
			n := &model.Namespace{Name: ns}
			model.SetNamespaceLabels(n, map[string]string{"team": []string{"blue", "red"}[rng.Intn(2)]})
			e.UpsertNamespace(n)
			what = "relabel namespace " + ns
		}
		rs := Compile(e, "node-1", Options{})
		st, err := en.Apply(ctx, rs)
		if err != nil {
			t.Fatalf("step %d (%s): Apply: %v", step, what, err)
		}
		if !st.Empty() {
			changed++
		}
		if step > 0 && st.Full {
			t.Errorf("step %d (%s): full replace, want incremental", step, what)
		}
		back, err := Read(path)
		if err != nil {
			t.Fatalf("step %d: Read: %v", step, err)
		}
		back.Live = false
		if diff := cmp.Diff(rs.String(), back.String()); diff != "" {
			t.Fatalf("step %d (%s, %s): kernel differs from the ruleset (-want +kernel):\n%s", step, what, st, diff)
		}
	}
}
