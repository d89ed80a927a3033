package manifest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-net/palisade/internal/model"
)

// endless reads as an endless stream of blanks, like /dev/zero behind a
// pipe.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("read failed") }

// TestReadBounds checks that special and huge inputs give a clear error,
// promptly, instead of a hang or an out-of-memory crash.
func TestReadBounds(t *testing.T) {
	dir := t.TempDir()
	fifoDir := filepath.Join(dir, "d")
	if err := os.Mkdir(fifoDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(fifoDir, "x.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.yaml")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxInputBytes + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()

	tests := []struct {
		name  string
		paths []string
		stdin io.Reader
		err   string
	}{
		{name: "/dev/zero", paths: []string{"/dev/zero"},
			err: "/dev/zero: not a regular file (a character device): palisade reads files, directories and - (stdin)"},
		{name: "a named pipe in a directory", paths: []string{fifoDir},
			err: filepath.Join(fifoDir, "x.yaml") + ": not a regular file (a named pipe): palisade reads files, directories and - (stdin)"},
		{name: "a file over the limit", paths: []string{huge},
			err: huge + ": more than 64 MiB: palisade reads no larger manifests"},
		{name: "endless stdin", paths: []string{"-"}, stdin: endless{},
			err: "<stdin>: more than 64 MiB: palisade reads no larger manifests"},
		{name: "stdin fails", paths: []string{"-"}, stdin: failing{},
			err: "<stdin>: read failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				objs, err := Read(tt.paths, tt.stdin, io.Discard)
				if objs != nil {
					err = errors.New("objects returned")
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || err.Error() != tt.err || !errors.Is(err, ErrInvalid) {
					t.Errorf("Read() error = %v, want %s", err, tt.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Read() hangs")
			}
		})
	}
}

// TestReadNamedPipe: a pipe named with -f (`-f <(helm template …)`) is
// read like stdin, under the same bound.
func TestReadNamedPipe(t *testing.T) {
	const pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: nginx}]}\n"
	for _, tt := range []struct {
		name  string
		write func(w io.Writer)
		err   string
	}{
		{name: "a manifest", write: func(w io.Writer) { io.WriteString(w, pod) }},
		{name: "endless", write: func(w io.Writer) { io.Copy(w, endless{}) }, err: ": more than 64 MiB: palisade reads no larger manifests"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "fifo.yaml")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			go func() {
				f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
				if err != nil {
					return
				}
				defer f.Close()
				tt.write(f)
			}()
			objs, err := Read([]string{fifo}, nil, io.Discard)
			switch {
			case tt.err == "" && (err != nil || len(objs) != 1 || objs[0].Key.Name != "web"):
				t.Errorf("Read(fifo) = %v, %v; want pod web", objs, err)
			case tt.err != "" && (err == nil || err.Error() != fifo+tt.err):
				t.Errorf("Read(fifo) error = %v, want %s%s", err, fifo, tt.err)
			}
		})
	}
}

// TestReadWorkloads checks the model pods that workloads give.
func TestReadWorkloads(t *testing.T) {
	objs, err := Read([]string{"testdata/workloads.yaml"}, nil, io.Discard)
	if err != nil {
		t.Fatalf("Read() error: %v", err)
	}
	type pod struct {
		Key         model.Key
		Workload    string
		Replicas    int
		Labels      map[string]string
		HostNetwork bool
		Ports       []model.ContainerPort
		Images      []string
	}
	var got []pod
	for _, o := range objs {
		p, ok := o.Model.(*model.Pod)
		if !ok {
			t.Fatalf("%s: model is %T, want *model.Pod", o.Source, o.Model)
		}
		if o.API.GetObjectKind().GroupVersionKind().Kind != o.Kind || p.IPs != nil {
			t.Errorf("%s: API kind %v, IPs %v", o.Source, o.API.GetObjectKind().GroupVersionKind(), p.IPs)
		}
		got = append(got, pod{p.Key(), p.Workload, p.Replicas, p.Labels, p.HostNetwork, p.Ports, p.Images})
	}
	tcp := func(name string, port uint16) model.ContainerPort {
		return model.ContainerPort{Name: name, Port: port, Protocol: model.TCP}
	}
	want := []pod{
		{model.Key{Namespace: "prod", Name: "web[Deployment]"}, "Deployment", 3, map[string]string{"app": "web", "tier": "front"}, false,
			[]model.ContainerPort{tcp("http", 80)}, []string{"nginx"}},
		{model.Key{Namespace: "default", Name: "web-1[ReplicaSet]"}, "ReplicaSet", 1, map[string]string{"app": "web"}, false, nil, []string{"nginx"}},
		{model.Key{Namespace: "prod", Name: "db[StatefulSet]"}, "StatefulSet", 1, map[string]string{"app": "db"}, false,
			[]model.ContainerPort{tcp("pg", 5432)}, []string{"postgres"}},
		{model.Key{Namespace: "kube-system", Name: "agent[DaemonSet]"}, "DaemonSet", 0, map[string]string{"app": "agent"}, true,
			[]model.ContainerPort{tcp("", 9100)}, []string{"agent"}},
		{model.Key{Namespace: "prod", Name: "migrate[Job]"}, "Job", 2,
			map[string]string{"app": "migrate", "job-name": "migrate", "batch.kubernetes.io/job-name": "migrate"}, false, nil, []string{"migrate"}},
		{model.Key{Namespace: "prod", Name: "backup[CronJob]"}, "CronJob", 1, map[string]string{"app": "backup"}, false, nil, []string{"backup"}},
		{model.Key{Namespace: "default", Name: "legacy[ReplicationController]"}, "ReplicationController", 2, map[string]string{"app": "legacy"}, false,
			[]model.ContainerPort{{Port: 8080, Protocol: model.UDP}}, []string{"legacy"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("workload pods mismatch (-want +got):\n%s", diff)
	}

	c, err := Cluster(objs)
	if err != nil {
		t.Fatalf("Cluster() error: %v", err)
	}
	if p := c.Pods[model.Key{Namespace: "prod", Name: "web[Deployment]"}]; p == nil || !p.Siblings() {
		t.Errorf("cluster pod prod/web[Deployment] = %+v, want a workload pod with siblings", p)
	}
	if _, ok := c.Namespaces["kube-system"]; !ok || len(c.Pods) != 7 {
		t.Errorf("cluster has %d pods and namespaces %v", len(c.Pods), c.Namespaces)
	}
}

func TestClusterErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		errs []string
	}{
		{
			name: "two Services with one cluster IP",
			in: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}\n---\n" +
				"apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: x}\nspec: {clusterIPs: [fd00::10, 10.96.0.10], ports: [{port: 80}]}\n---\n" +
				"apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec: {clusterIP: None, ports: [{port: 80}]}\n---\n" +
				"apiVersion: v1\nkind: Service\nmetadata: {name: d}\nspec: {clusterIP: None, ports: [{port: 80}]}\n",
			errs: []string{`<stdin>#2: Service x/b: spec.clusterIPs: Invalid value: "10.96.0.10": provided IP is already allocated to Service default/a (<stdin>#1)`},
		},
		{
			name: "a Service replaced by a later one with its cluster IP",
			in: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}\n---\n" +
				"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 81}]}\n",
		},
		{
			name: "a finished pod's address taken by a live pod",
			in: "apiVersion: v1\nkind: Pod\nmetadata: {name: job-abc}\nstatus: {phase: Succeeded, podIP: 10.0.0.1}\n---\n" +
				"apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nstatus: {phase: Running, podIP: 10.0.0.1}\n",
		},
		{
			name: "two live pods with one address",
			in: "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nstatus: {podIP: 10.0.0.1}\n---\n" +
				"apiVersion: v1\nkind: Pod\nmetadata: {name: b}\nstatus: {phase: Pending, podIP: 10.0.0.1}\n",
			errs: []string{"<stdin>#2: Pod default/b: status.podIPs: address 10.0.0.1 is also pod default/a's"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Read([]string{"-"}, strings.NewReader(tt.in), io.Discard)
			if err != nil {
				t.Fatalf("Read() error: %v", err)
			}
			c, err := Cluster(objs)
			var got []string
			if err != nil {
				got = lines(err.Error())
				if !errors.Is(err, ErrInvalid) || c != nil {
					t.Errorf("Cluster() = %v, %v: want no cluster and ErrInvalid", c, err)
				}
			}
			if diff := cmp.Diff(tt.errs, got); diff != "" {
				t.Errorf("Cluster() error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNotManifestFiles checks the one line for a directory's files that
// hold no Kubernetes objects: it names the first few and counts the rest.
func TestNotManifestFiles(t *testing.T) {
	dir := t.TempDir()
	for i := range 10 {
		name := filepath.Join(dir, fmt.Sprintf("values-%d.yaml", i))
		if err := os.WriteFile(name, []byte("replicas: 2\n---\n- a\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name": "x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var warn strings.Builder
	objs, err := Read([]string{dir}, nil, &warn)
	if err != nil || len(objs) != 0 {
		t.Fatalf("Read() = %d objects, %v", len(objs), err)
	}
	var named []string
	for _, n := range []string{"package.json", "values-0.yaml", "values-1.yaml", "values-2.yaml", "values-3.yaml", "values-4.yaml", "values-5.yaml", "values-6.yaml"} {
		named = append(named, filepath.Join(dir, n))
	}
	want := "warning: skipped 11 files in directories that hold no Kubernetes objects (no apiVersion or kind): " +
		strings.Join(named, ", ") + " and 3 more\n"
	if warn.String() != want {
		t.Errorf("Read() warned %q, want %q", warn.String(), want)
	}
}
