package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/model"
)

// withPods makes the verbs read, besides their manifests, the pods given:
// workloads as the manifest reader turns them into pods.
func withPods(t *testing.T, pods ...*model.Pod) {
	orig := readManifests
	t.Cleanup(func() { readManifests = orig })
	readManifests = func(in *input, s Streams) (*model.Cluster, error) {
		c, err := orig(in, s)
		if err != nil {
			return nil, err
		}
		for _, p := range pods {
			c.Pods[p.Key()] = p
			c.EnsureNamespace(p.Namespace)
		}
		return c, nil
	}
}

func workload(ns, name, kind string, replicas int, app string) *model.Pod {
	return &model.Pod{Namespace: ns, Name: name + "[" + kind + "]", Workload: kind, Replicas: replicas,
		Labels: map[string]string{"app": app}, Ports: []model.ContainerPort{{Name: "http", Port: 8080, Protocol: model.TCP}}}
}

// workloads go with testdata/workloads.yaml: a Deployment of three behind
// the Service api, two workloads called db, a DaemonSet, and in another
// namespace a Deployment of one.
func workloads(t *testing.T) []string {
	withPods(t,
		workload("default", "api", "Deployment", 3, "api"),
		workload("default", "db", "StatefulSet", 2, "db"),
		workload("default", "db", "Deployment", 1, "db2"),
		workload("default", "agent", "DaemonSet", 0, "agent"),
		workload("other", "api", "Deployment", 1, "api"),
	)
	return []string{"-f", "testdata/workloads.yaml"}
}

func TestWorkloadMatrix(t *testing.T) {
	f := workloads(t)
	runCases(t, "matrix", []cliCase{
		// Pods first, then workloads by namespace, name and kind. Three
		// replicas of api talk to each other under policy (X); the one pod
		// of other/api talks to itself.
		{name: "pods, then workloads", args: append(f, "--port", "8080"),
			exactOut: "8080/TCP\n" +
				"-                         default/client  default/agent[DaemonSet]  default/api[Deployment]  default/db[Deployment]  default/db[StatefulSet]  other/api[Deployment]\n" +
				"default/client            .               .                         .                        .                       .                        .\n" +
				"default/agent[DaemonSet]  .               .                         X                        .                       .                        .\n" +
				"default/api[Deployment]   .               .                         X                        .                       .                        .\n" +
				"default/db[Deployment]    .               .                         X                        .                       .                        .\n" +
				"default/db[StatefulSet]   .               .                         X                        .                       .                        .\n" +
				"other/api[Deployment]     .               .                         X                        .                       .                        .\n" +
				"\nrows are sources, columns destinations: . allowed, X denied\n" +
				"ports probed: 8080/TCP (given with --port)\n"},
		{name: "-n", args: append(f, "-n", "other", "--port", "8080"),
			exactOut: "8080/TCP\n-                      other/api[Deployment]\nother/api[Deployment]  .\n" +
				"\nrows are sources, columns destinations: . allowed, X denied\n" +
				"ports probed: 8080/TCP (given with --port)\n"},
		{name: "a workload by name", args: append(f, "default/client", "other/api", "--port", "8080"),
			out: []string{"\n-                      default/client  other/api[Deployment]\n"}},
	})
}

func TestWorkloadCheck(t *testing.T) {
	f := workloads(t)
	runCases(t, "check", []cliCase{
		{name: "a workload and a Service of one name: pick one",
			args: append(f, "--from", "client", "--to", "api", "--port", "8080"), code: 2,
			errs: []string{`--to "api": Deployment default/api[Deployment] and service default/api both exist: say pod/default/api for the Deployment, svc/default/api`}},
		{name: "pod/NAME is the workload when there is no pod NAME",
			args: append(f, "--from", "client", "--to", "pod/api", "--port", "8080"), code: 0,
			out: []string{"ALLOW default/client -> default/api[Deployment] 8080/TCP\n"}},
		{name: "the Service's endpoint is the workload",
			args: append(f, "--from", "client", "--to", "svc/api", "--port", "80"), code: 0,
			out: []string{"ALLOW default/client -> service default/api 80/TCP: 1 of 1 endpoint allowed", "endpoint default/api[Deployment] port 8080: ALLOW"}},
		{name: "two workloads of a name: the choices",
			args: append(f, "--from", "db", "--to", "client", "--port", "80"), code: 2,
			errs: []string{"default/db names 2 workloads: say which, default/db[Deployment] or default/db[StatefulSet]"}},
		{name: "NAME[KIND] says which",
			args: append(f, "--from", "default/db[StatefulSet]", "--to", "pod/api", "--port", "8080"), code: 1,
			out: []string{"DENY default/db[StatefulSet] -> default/api[Deployment] 8080/TCP", "source default/db[StatefulSet] is not a peer"}},
		{name: "replicas of a workload reach each other under policy",
			args: append(f, "--from", "pod/api", "--to", "pod/api", "--port", "8080"), code: 1,
			out: []string{"DENY default/api[Deployment] -> default/api[Deployment]"}, notOut: []string{"loopback"}},
		{name: "a workload of one replica is one pod: loopback",
			args: append(f, "--from", "other/api", "--to", "pod/other/api", "--port", "8080"), code: 0,
			out: []string{"loopback: never subject to policy"}},
		{name: "an ipBlock cannot match a workload without IP",
			args: append(f, "--from", "db[Deployment]", "--to", "pod/api", "--port", "9090"), code: 1,
			out: []string{"DENY default/db[Deployment] -> default/api[Deployment] 9090/TCP"}},
		{name: "where a pod's address can",
			args: append(f, "--from", "10.0.3.1", "--to", "pod/api", "--port", "9090"), code: 0,
			out: []string{"allowed by default/api-from-client ingress[1]"}},
	})
}

func TestWorkloadExplain(t *testing.T) {
	f := workloads(t)
	runCases(t, "explain", []cliCase{
		{name: "a Deployment by its name", args: append(f, "api"),
			out: []string{"default/api[Deployment] (no IP) labels app=api\n",
				"  stands for the 3 replicas of Deployment default/api\n",
				"  no IP in the input: no policy's ipBlock can match it, only pod selectors can\n",
				"ingress: isolated by default/api-from-client"}},
		{name: "a DaemonSet", args: append(f, "agent"),
			out: []string{"stands for the pod of DaemonSet default/agent on every node\n"}},
		{name: "one replica", args: append(f, "other/api"),
			out: []string{"stands for the one pod of Deployment other/api\n"}},
		{name: "two workloads of a name", args: append(f, "db"), code: 2,
			errs: []string{"say which, default/db[Deployment] or default/db[StatefulSet]"}},
		{name: "the list: pods, then workloads", args: f,
			out: []string{"default/client (10.0.3.1) labels app=client\n  ingress: not isolated: who may connect to it is not restricted\n" +
				"  egress: not isolated: where it may connect is not restricted\n\ndefault/agent[DaemonSet] (no IP)"}},
		{name: "-n lists that namespace's workloads", args: append(f, "-n", "other"),
			out: []string{"other/api[Deployment]"}, notOut: []string{"default/"}},
	})
	_, out, _ := run(t, "", append([]string{"explain", "-o", "json"}, append(f, "api")...)...)
	var docs []explained
	if err := json.Unmarshal([]byte(out), &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].Workload != "Deployment" || docs[0].Replicas != 3 || len(docs[0].IPs) != 0 {
		t.Errorf("JSON %s", out)
	}
}

// The same from manifests: the reader turns workloads into pods.
func TestWorkloadManifests(t *testing.T) {
	f := []string{"-f", "testdata/workload-manifests.yaml", "-q"}
	runCases(t, "matrix", []cliCase{
		// api declares 8080, so that is what matrix probes, not 80.
		{name: "matrix", args: f, exactOut: "8080/TCP\n" +
			"-                         default/client  default/agent[DaemonSet]  default/api[Deployment]\n" +
			"default/client            .               .                         .\n" +
			"default/agent[DaemonSet]  .               .                         X\n" +
			"default/api[Deployment]   .               .                         X\n" +
			"\nrows are sources, columns destinations: . allowed, X denied\n" +
			"ports probed: 8080/TCP (the container ports the pods declare)\n"},
		{name: "80 still answers as before", args: append(f, "--port", "80"), out: []string{"default/client            .               .                         X\n"}},
	})
	runCases(t, "check", []cliCase{
		{name: "the Service's named target port on the Deployment",
			args: append(f, "--from", "client", "--to", "svc/api", "--port", "80"), code: 0,
			out: []string{"ALLOW default/client -> service default/api 80/TCP: 1 of 1 endpoint allowed", "endpoint default/api[Deployment] port 8080: ALLOW"}},
		{name: "a bare name that is a Deployment and a Service",
			args: append(f, "--from", "client", "--to", "api", "--port", "80"), code: 2,
			errs: []string{"Deployment default/api[Deployment] and service default/api both exist"}},
	})
	if _, _, errOut := run(t, "", append([]string{"matrix"}, f...)...); errOut != "" {
		t.Errorf("-q: stderr %q", errOut)
	}
	if _, _, errOut := run(t, "", "matrix", "-f", f[1]); strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "ConfigMap") {
		t.Errorf("without -q: stderr %q, want one warning line", errOut)
	}
	runCases(t, "explain", []cliCase{
		{name: "a DaemonSet by name", args: append(f, "agent"),
			out: []string{"default/agent[DaemonSet] (no IP) labels app=agent\n  stands for the pod of DaemonSet default/agent on every node\n"}},
	})
}
