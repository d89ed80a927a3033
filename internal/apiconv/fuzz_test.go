package apiconv

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/palisade-net/palisade/internal/model"
)

// FuzzPolicy feeds arbitrary NetworkPolicy JSON to Policy: it must not
// panic, must return exactly one of a policy or an *Error, and a policy it
// accepts must satisfy the model's invariants.
func FuzzPolicy(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"name":"a"},"spec":{}}`,
		`{"metadata":{"name":"a","namespace":"x"},"spec":{"podSelector":{"matchExpressions":[{"key":"a","operator":"In","values":["b"]}]},"policyTypes":["Ingress","Egress"]}}`,
		`{"metadata":{"name":"a"},"spec":{"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}}],"ports":[{"port":80,"endPort":90},{"port":"http","protocol":"UDP"}]}]}}`,
		`{"metadata":{"name":"a"},"spec":{"egress":[{"to":[{"namespaceSelector":{},"podSelector":{"matchLabels":{"a":"b"}}},{}],"ports":[{"protocol":"SCTP"}]}]}}`,
		`{"metadata":{"name":"a"},"spec":{"egress":[{"to":[{"ipBlock":{"cidr":"fd00::/8","except":["fd00::/8","::/0","x"]}}]}]}}`,
		`{"metadata":{"name":""},"spec":{"policyTypes":["x","y","z"],"ingress":[{"ports":[{"port":0,"endPort":-1}]}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var np networkingv1.NetworkPolicy
		if json.Unmarshal(data, &np) != nil {
			return
		}
		p, err := Policy(&np)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || len(ae.Errs) == 0 || p != nil {
				t.Fatalf("Policy() = %v, %v (%T), want nil and an *Error", p, err, err)
			}
			return
		}
		if p == nil || p.Namespace == "" || p.Name == "" {
			t.Fatalf("Policy() = %+v, want a named policy", p)
		}
		if !p.Ingress && !p.Egress {
			t.Fatalf("Policy() has no effective policyTypes")
		}
		for _, rules := range [][]model.Rule{p.IngressRules, p.EgressRules} {
			for _, r := range rules {
				for _, port := range r.Ports {
					if port.EndPort != 0 && (port.Name != "" || port.EndPort < port.Port) {
						t.Fatalf("invalid port range accepted: %+v", port)
					}
				}
				for _, peer := range r.Peers {
					if peer.IPBlock == nil {
						if peer.PodSelector == nil && peer.NamespaceSelector == nil {
							t.Fatalf("empty peer accepted")
						}
						continue
					}
					if peer.PodSelector != nil || peer.NamespaceSelector != nil {
						t.Fatalf("ipBlock with selector accepted")
					}
					c := peer.IPBlock.CIDR
					if !c.IsValid() || c != c.Masked() {
						t.Fatalf("CIDR %v not valid and masked", c)
					}
					for _, ex := range peer.IPBlock.Except {
						if ex != ex.Masked() || ex.Bits() <= c.Bits() || !c.Contains(ex.Addr()) {
							t.Fatalf("except %v not strictly inside %v", ex, c)
						}
					}
				}
			}
		}
	})
}

// FuzzWorkload feeds arbitrary JSON, as one of the workload kinds, to
// Workload: it must not panic, must return exactly one of a pod or an
// *Error, and a pod it accepts is named for its workload with a
// replica count that is not negative.
func FuzzWorkload(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"name":"web"},"spec":{"replicas":2,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"ports":[{"name":"http","containerPort":80}]}]}}}}`,
		`{"metadata":{"name":"j"},"spec":{"parallelism":-1,"selector":{"matchExpressions":[{"key":"a","operator":"Exists"}]},"template":{"spec":{"hostNetwork":true}}}}`,
		`{"metadata":{"name":"c"},"spec":{"jobTemplate":{"spec":{"manualSelector":true,"template":{"metadata":{"labels":{"x":"y"}}}}}}}`,
		`{"metadata":{"name":"rc"},"spec":{"selector":{"a":"b"},"template":{"metadata":{"labels":{"a":"c"}}}}}`,
	} {
		for kind := range uint8(len(WorkloadKinds)) {
			f.Add(kind, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		objs := []runtime.Object{&appsv1.Deployment{}, &appsv1.ReplicaSet{}, &appsv1.StatefulSet{}, &appsv1.DaemonSet{},
			&batchv1.Job{}, &batchv1.CronJob{}, &corev1.ReplicationController{}}
		obj := objs[int(kind)%len(objs)]
		if json.Unmarshal(data, obj) != nil {
			return
		}
		p, err := Workload(obj)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || len(ae.Errs) == 0 || p != nil {
				t.Fatalf("Workload() = %v, %v (%T), want nil and an *Error", p, err, err)
			}
			return
		}
		want := WorkloadKinds[int(kind)%len(objs)]
		if p == nil || p.Workload != want || !strings.HasSuffix(p.Name, "["+want+"]") || p.Replicas < 0 || p.IPs != nil {
			t.Fatalf("Workload() = %+v, want a %s pod", p, want)
		}
	})
}
