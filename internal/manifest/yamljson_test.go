package manifest

import (
	"strings"
	"testing"
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
		{name: "billion laughs", in: laughs, bad: 1, err: "too many nodes through aliases"},
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
