package manifest

import (
	"bytes"
	"encoding/json"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func TestSplitDocuments(t *testing.T) {
	laughs := "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
	for _, l := range []string{"b", "c", "d", "e", "f", "g", "h"} {
		prev := string(rune(l[0] - 1))
		laughs += l + ": &" + l + " [" + strings.TrimSuffix(strings.Repeat("*"+prev+",", 10), ",") + "]\n"
	}
	tests := []struct {
		name string
		in   string
		want []string // the documents as JSON
		bad  int
		err  string
	}{
		{name: "YAML 1.2 scalars", in: "a: y\nb: yes\nc: on\nd: 2024-01-02\ne: true\nf: ~\ng: 0x50\nh: 1e3\ni: '80'\nj: 0644\nk: !!str 5\n",
			want: []string{`{"a":"y","b":"yes","c":"on","d":"2024-01-02","e":true,"f":null,"g":80,"h":1000,"i":"80","j":420,"k":"5"}`}},
		{name: "big numbers", in: "a: 18446744073709551615\nb: 1e400\n", want: []string{`{"a":18446744073709551615,"b":"1e400"}`}},
		{name: "infinity", in: "a: .inf\n", bad: 1, err: `".inf" is not a JSON number`},
		{name: "empty documents are skipped and not counted", in: "---\n# c\n---\na: 1\n---\n---\nb: 2\n",
			want: []string{`{"a":1}`, `{"b":2}`}},
		{name: "JSON stream", in: " {\"a\": 1}\n{\"b\": [2]} null {\"c\": 3}",
			want: []string{`{"a": 1}`, `{"b": [2]}`, `{"c": 3}`}},
		{name: "JSON error after the first value", in: `{"a": 1} {"b":`, want: []string{`{"a": 1}`}, bad: 2, err: "unexpected EOF"},
		{name: "merge keys, explicit keys win", in: "base: &b {x: 1, y: 2}\nm: {<<: *b, y: 3}\nn: {y: 4, <<: [*b]}\n",
			want: []string{`{"base":{"x":1,"y":2},"m":{"x":1,"y":3},"n":{"x":1,"y":4}}`}},
		{name: "duplicate key", in: "a: 1\nb: 2\na: 3\n", bad: 1, err: `yaml: line 3: mapping key "a" already defined at line 1`},
		{name: "non-scalar key", in: "? [a]\n: 1\n", bad: 1, err: "mapping key is not a scalar"},
		{name: "alias cycle", in: "a: &a {b: *a}\n", bad: 1, err: "alias refers to a collection that contains it"},
		{name: "merge cycle", in: "a: &a {<<: *a}\n", bad: 1, err: "merge refers to a mapping that contains it"},
		{name: "billion laughs", in: laughs, bad: 1, err: "expands to more than 4 MiB through aliases"},
		{name: "deep nesting", in: strings.Repeat("[", 5000) + strings.Repeat("]", 5000), bad: 1, err: "nested too deeply"},
		{name: "second document bad", in: "a: 1\n---\nb: [\n", want: []string{`{"a":1}`}, bad: 2, err: "did not find expected node content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, bad, err := splitDocuments([]byte(tt.in))
			var got []string
			for i, d := range docs {
				if d.index != i+1 {
					t.Errorf("document %d has index %d", i, d.index)
				}
				got = append(got, string(d.json))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("splitDocuments() = %q, want %q", got, tt.want)
			}
			if bad != tt.bad {
				t.Errorf("splitDocuments() bad index = %d, want %d", bad, tt.bad)
			}
			if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("splitDocuments() error = %v, want %q", err, tt.err)
			}
		})
	}
}

// kubectlDocuments reads a stream as kubectl apply -f does (its resource
// builder's StreamVisitor: NewYAMLOrJSONDecoder with a 4096-byte buffer,
// into RawExtensions, skipping empty and null documents).
func kubectlDocuments(in string) ([]string, error) {
	d := kyaml.NewYAMLOrJSONDecoder(strings.NewReader(in), 4096)
	var docs []string
	for {
		var ext kruntime.RawExtension
		if err := d.Decode(&ext); err == io.EOF {
			return docs, nil
		} else if err != nil {
			return docs, err
		}
		raw := bytes.TrimSpace(ext.Raw)
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		docs = append(docs, string(raw))
	}
}

// TestSplitDocumentsLikeKubectl checks splitDocuments against kubectl's own
// decoder: the same documents, or an error from both, and for a syntax
// error in the first document the same message.
func TestSplitDocumentsLikeKubectl(t *testing.T) {
	tests := []struct {
		name string
		in   string
		docs int // documents expected from both
		err  bool
	}{
		{name: "JSON then ---", in: "{\"a\": 1}\n---\n{\"b\": 2}\n", docs: 2},
		{name: "JSON then --- and YAML", in: "{\"a\": 1}\n---\nb: 2\n---\nc: 3\n", docs: 3},
		{name: "JSON then YAML without ---", in: "{\"a\": 1}\nb: 2\n", docs: 2},
		{name: "JSON and --- on one line", in: "{\"a\": 1} ---\nb: 2\n", docs: 2},
		{name: "JSON stream", in: "{\"a\": 1}\n\n  {\"b\": 2} {\"c\": 3}\n", docs: 3},
		{name: "two JSON values then ---", in: "{\"a\": 1}\n{\"b\": 2}\n---\nc: 3\n", docs: 2, err: true},
		{name: "JSON, null, then ---", in: "{\"a\": 1} null\n---\nc: 3\n", docs: 1, err: true},
		{name: "YAML flow mapping first", in: "{a: 1}\n---\nb: 2\n", docs: 2},
		{name: "leading comment: YAML", in: "# c\n{\"a\": 1}\n---\n{\"b\": 2}\n", docs: 2},
		{name: "blank and comment documents", in: "---\n# only a comment\n---\n\n---\na: 1\n--- # c\nb: 2\n---\n", docs: 2},
		{name: "null documents", in: "null\n---\na: 1\n---\n~\n", docs: 1},
		{name: "separator with content", in: "a: 1\n--- {b: 2}\n", err: true},
		{name: "four dashes", in: "a: 1\n----\nb: 2\n", err: true},
		{name: "CRLF", in: "a: 1\r\n---\r\nb: 2\r\n", docs: 2},
		{name: "byte order mark", in: "\ufeffa: 1\n---\nb: 2\n", docs: 2},
		{name: "JSON with a byte order mark", in: "\ufeff{\"a\": 1}\n", docs: 1},
		{name: "tab on line 5", in: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n\tlabels: {}\n", err: true},
		{name: "tab in a value's indentation", in: "a: 1\nb:\n\tc: 2\n", err: true},
		{name: "unclosed flow", in: "a: [\n", err: true},
		{name: "YAML error in the second document", in: "a: 1\n---\nb: 2\nc: [\n", docs: 1, err: true},
		{name: "JSON syntax error in the third value", in: "{\"a\": 1}{\"b\": 2}{\"c\"\n", docs: 2, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, kerr := kubectlDocuments(tt.in)
			if len(want) != tt.docs || (kerr != nil) != tt.err {
				t.Fatalf("kubectl read %d documents, error %v; the test expects %d, error %v", len(want), kerr, tt.docs, tt.err)
			}
			docs, _, err := splitDocuments([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("splitDocuments() error = %v, kubectl's = %v", err, kerr)
			}
			if len(docs) != len(want) {
				t.Fatalf("splitDocuments() = %d documents, kubectl read %d", len(docs), len(want))
			}
			for i, d := range docs {
				var got, exp any
				if json.Unmarshal(d.json, &got) != nil || json.Unmarshal([]byte(want[i]), &exp) != nil || !cmp.Equal(got, exp) {
					t.Errorf("document %d = %s, kubectl's = %s", i+1, d.json, want[i])
				}
			}
			// A YAML syntax error in the first document: kubectl's words
			// and line (later documents' lines differ: kubectl counts from
			// the document's start, palisade from the file's).
			if kerr != nil && len(want) == 0 && strings.Contains(kerr.Error(), "yaml: line") {
				if k := strings.TrimPrefix(kerr.Error(), "error converting YAML to JSON: "); err.Error() != k {
					t.Errorf("splitDocuments() error = %q, kubectl's = %q", err, k)
				}
			}
		})
	}
}

// TestAliasBounds feeds small files whose aliases would expand to
// gigabytes: each fails fast, and with little memory.
func TestAliasBounds(t *testing.T) {
	nested := func(leaf string) string {
		s := "a: &a " + leaf + "\n"
		for _, l := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
			prev := string(rune(l[0] - 1))
			s += l + ": &" + l + " [" + strings.TrimSuffix(strings.Repeat("*"+prev+",", 10), ",") + "]\n"
		}
		return s
	}
	tests := []struct{ name, in string }{
		{"small nodes", nested("x")},
		// 16 KB of scalar reached 10^8 times: what the node count alone let through.
		{"big scalar", nested(`"` + strings.Repeat("x", 16<<10) + `"`)},
		{"big keys through merges", "k: &k\n  ? " + strings.Repeat("k", 16<<10) + "\n  : 1\n" + nested("{<<: *k}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, _, err := splitDocuments([]byte(tt.in))
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), "through aliases") {
				t.Fatalf("splitDocuments() error = %v, want the alias bound", err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("splitDocuments() allocated %d MiB", alloc>>20)
			}
			if elapsed > 5*time.Second {
				t.Errorf("splitDocuments() took %v", elapsed)
			}
		})
	}
}
