package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// matrix's other formats, named ports and its input errors; the grids'
// rendering itself is internal/render's to test.
func TestMatrixFormats(t *testing.T) {
	f := []string{"-f", "testdata/workload-manifests.yaml", "-q"}
	runCases(t, "matrix", []cliCase{
		{name: "a named port resolves on each destination", args: append(f, "--port", "http"),
			exactOut: "http/TCP\n" +
				"-                         default/client  default/agent[DaemonSet]  default/api[Deployment]\n" +
				"default/client            -               -                         .\n" +
				"default/agent[DaemonSet]  -               -                         X\n" +
				"default/api[Deployment]   -               -                         X\n" +
				"\nrows are sources, columns destinations: . allowed, X denied, - the destination declares no such named port\n" +
				"ports probed: http/TCP (given with --port)\n"},
		{name: "csv", args: append(f, "-o", "csv", "--port", "http"),
			out: []string{"probe,from,to,port,protocol,verdict,explanation\n",
				"http/TCP,default/client,default/api[Deployment],8080,TCP,allow,", "http/TCP,default/client,default/client,,TCP,no-port,"}},
		{name: "md", args: append(f, "-o", "md"), out: []string{"### 8080/TCP\n", "| default/client | . | . | . |\n"}},
		{name: "dot", args: append(f, "-o", "dot"), out: []string{"digraph matrix {\n", `"default/client" -> "default/api[Deployment]" [label="8080/TCP"];`}},
		{name: "svg", args: append(f, "-o", "svg"), out: []string{"<svg xmlns=", "</svg>\n"}},
		{name: "html", args: append(f, "-o", "html"), out: []string{"<!DOCTYPE html>", `data-from="default/client" data-to="default/api[Deployment]" data-probe="8080/TCP" data-port="8080" data-verdict="allow"`}},
		{name: "json keeps the conformance shape", args: append(f, "-o", "json"), out: []string{`"port": 8080`}},
		{name: "json has no named ports", args: append(f, "-o", "json", "--port", "http"), code: 2,
			errs: []string{"--port http: -o json tables have one port number"}},
		{name: "an unknown format", args: append(f, "-o", "png"), code: 2,
			errs: []string{`-o "png": want text, json, yaml, csv, md, dot, svg or html`}},
		{name: "a port that is neither number nor name", args: append(f, "--port", "HTTP_1"), code: 2,
			errs: []string{`port "HTTP_1": want a number 1-65535 or a container port name`}},
		{name: "a named port no pod declares is a mistake", args: append(f, "--port", "http/UDP"), code: 2,
			errs: []string{"--port http: no pod of the matrix declares a container port http/UDP"}},
		{name: "nor do the pods shown", args: append(f, "--port", "http", "default/client"), code: 2,
			errs: []string{"no pod of the matrix declares a container port http/TCP"}},
	})
}

// --nodes workloads draws a Deployment's generated pods as one node.
func TestMatrixWorkloadNodes(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pods.yaml")
	var y strings.Builder
	for _, name := range []string{"web-7d9f8b6c4d-x2k9p", "web-7d9f8b6c4d-q8z7w", "db-0"} {
		fmt.Fprintf(&y, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: shop, labels: {app: x}}\nspec: {containers: [{name: c, image: c}]}\n", name)
	}
	if err := os.WriteFile(f, []byte(y.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	runCases(t, "matrix", []cliCase{
		{name: "dot", args: []string{"-f", f, "-o", "dot", "--nodes", "workloads"},
			out:    []string{`"shop/web-*";`, `"shop/db-0";`, `"shop/web-*" -> "shop/db-0" [label="80/TCP"];`},
			notOut: []string{"x2k9p", `"shop/web-*" -> "shop/web-*"`}},
		{name: "html", args: []string{"-f", f, "-o", "html", "--nodes", "workloads"},
			out: []string{`id="node-1" data-pod="shop/web-*"`, `data-from="shop/web-7d9f8b6c4d-q8z7w"`}},
		{name: "pods by default", args: []string{"-f", f, "-o", "dot"}, out: []string{`"shop/web-7d9f8b6c4d-x2k9p";`}},
		{name: "text has no graph", args: []string{"-f", f, "--nodes", "workloads"}, code: 2,
			errs: []string{"--nodes workloads: only -o dot and html draw a graph"}},
		{name: "an unknown grouping", args: []string{"-f", f, "-o", "dot", "--nodes", "teams"}, code: 2,
			errs: []string{`--nodes "teams": want pods or workloads`}},
	})
}
