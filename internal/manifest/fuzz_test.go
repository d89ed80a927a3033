package manifest

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead feeds arbitrary bytes to Read (as stdin) and DecodeObject: no
// input may panic, Read returns objects or an error but never both, every
// error is an *Error, and accepted objects build a cluster without panics.
func FuzzRead(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	more, _ := filepath.Glob("testdata/dir/*")
	for _, name := range append(files, more...) {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"",
		"---\n---\n",
		"{}",
		"null",
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}{"kind":"x"}`,
		"a: &a [*a]\n",
		"a: &a {b: 1}\nb: {<<: *a, c: 2}\n",
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: [{apiVersion: v1, kind: PodList, items: [{metadata: {name: p}}]}]\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {a: !!binary aGVsbG8=}}\nspec: {containers: [{ports: [{containerPort: 0x50}]}]}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 1e3}], clusterIP: .nan}\n",
		"apiVersion: v1\nkind: Node\nmetadata: {name: n}\nstatus: {addresses: [{type: InternalIP, address: 99999999999999999999999}]}\n",
		"{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}}\n---\nkind: Pod\n",
		"{\"a\": 1} null\n---\n{b: 2}\n",
		"a: 1\n...\nb: 2\n--- # c\n----\n",
		"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nstatus: {conditions: [{type: x}]}\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: {phase: Failed, podIP: 10.0.0.1}\n",
		"apiVersion: apps/v1\nkind: deployments\n---\napiVersion: batch/v1\nkind: CronJobList\nitems: [{metadata: {name: c}}]\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: 10.0.0.1, ports: [{port: 1}, {port: 1}]}\n",
		"apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a, namespace: x}\nspec: {priority: 1, subject: {namespaces: {}}, egress: [{action: Allow, to: [{networks: [10.0.0.0/8]}], ports: [{portRange: {start: 1, end: 2}}]}]}\n",
		"apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicyList\nitems: [{metadata: {name: c}, spec: {tier: Admin, priority: 0, subject: {pods: {podSelector: {}}}, ingress: [{action: Pass, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {number: 80}}}]}]}}]\n",
		"apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: c}\nspec: {tier: Baseline, subject: {}}\n---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec: {subject: {namespaces: {}}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Read([]string{"-"}, bytes.NewReader(data), io.Discard)
		if err != nil {
			if objs != nil {
				t.Fatalf("Read() returned %d objects and an error", len(objs))
			}
			checkErrors(t, err)
		} else {
			for _, o := range objs {
				if o.API == nil || o.Model == nil || o.Kind == "" || o.Key.Name == "" {
					t.Fatalf("Read() returned an incomplete object %+v", o)
				}
			}
			if _, err := Cluster(objs); err != nil {
				checkErrors(t, err)
			}
		}
		if _, err := DecodeObject(data, "fuzz"); err != nil {
			checkErrors(t, err)
		}
	})
}

// checkErrors fails unless every joined error is an *Error.
func checkErrors(t *testing.T, err error) {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var me *Error
		if !errors.As(e, &me) {
			t.Fatalf("error %q (%T) is not a *manifest.Error", e, e)
		}
	}
}
