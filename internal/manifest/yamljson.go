package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	yaml2 "go.yaml.in/yaml/v2"
	yaml "go.yaml.in/yaml/v3"
)

// maxAliasBytes bounds what alias expansion may add to one document: the
// bytes of the scalars it copies plus aliasNodeCost per node copied, so
// that neither many small nodes nor a few big scalars reached through
// nested aliases ("billion laughs") can exhaust memory or time. What is
// not reached through an alias is bounded by the input's size.
const (
	maxAliasBytes = 4 << 20
	aliasNodeCost = 16
)

// jsonSniffBytes is how far into a stream kubectl's decoder looks for the
// '{' that makes it read the stream as JSON.
const jsonSniffBytes = 4096

// document is one non-empty document of an input stream, as JSON.
type document struct {
	index int // 1-based among the stream's non-empty documents
	json  []byte
}

// splitDocuments splits a YAML or JSON stream into its non-empty documents,
// converted to JSON, as kubectl apply -f does (its resource builder reads
// with k8s.io/apimachinery/pkg/util/yaml.NewYAMLOrJSONDecoder, buffer 4096):
//
//   - A stream whose first non-space character within 4096 bytes is '{'
//     is read as a sequence of JSON values. If the first or the second
//     value is not JSON, the stream is read as YAML from there on (after
//     the blanks up to the end of the line), so JSON followed by "---" and
//     more documents, JSON or YAML, is read; a JSON error in a later value
//     is final.
//   - YAML is split into documents at lines that start with "---" and go
//     on with at most blanks and a comment (another line starting with
//     "---" is an error), and each document is then parsed.
//
// Documents that are empty, only comments, or null are skipped. On an
// error it returns the documents before it, the 1-based index the bad
// document would have had, and the error. YAML syntax errors are those of
// the parser kubectl uses (go-yaml v2), but their line numbers count from
// the start of the stream, where kubectl counts from the document's.
func splitDocuments(data []byte) ([]document, int, error) {
	var s splitter
	start := 0
	var jsonErr error
	if isJSONStream(data) {
		n, err := s.json(data)
		if err == nil {
			return s.docs, 0, nil
		}
		if s.values > 1 {
			return s.docs, len(s.docs) + 1, err
		}
		start, jsonErr = n+blankToEOL(data[n:]), err
	}
	if err := s.yaml(data, start); err != nil {
		// The stream went on as JSON and is no YAML either: the JSON
		// error says more, as kubectl would report it.
		if jsonErr != nil && s.values == len(s.docs)+s.nulls && looksJSON(data[start:]) {
			err = jsonErr
		}
		return s.docs, len(s.docs) + 1, err
	}
	return s.docs, 0, nil
}

// isJSONStream is kubectl's test: is the first non-space character within
// jsonSniffBytes a '{'?
func isJSONStream(data []byte) bool {
	if len(data) > jsonSniffBytes {
		data = data[:jsonSniffBytes]
	}
	return looksJSON(data)
}

func looksJSON(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeftFunc(data, unicode.IsSpace), []byte("{"))
}

// blankToEOL returns how many bytes of data are blanks up to and
// including the first newline, which kubectl's decoder skips when it turns
// from JSON to YAML.
func blankToEOL(data []byte) int {
	n := 0
	for n < len(data) {
		r, size := utf8.DecodeRune(data[n:])
		if !unicode.IsSpace(r) {
			break
		}
		n += size
		if r == '\n' {
			break
		}
	}
	return n
}

// lineAt returns the 1-based line of byte offset off.
func lineAt(data []byte, off int) int {
	if off > len(data) {
		off = len(data)
	}
	return 1 + bytes.Count(data[:off], []byte("\n"))
}

// splitter collects the documents of one stream.
type splitter struct {
	docs   []document
	values int // JSON values decoded, null included (kubectl counts them)
	nulls  int // of which null
}

func (s *splitter) add(j []byte) {
	s.docs = append(s.docs, document{index: len(s.docs) + 1, json: j})
}

// json reads JSON values and returns the offset after the last good one.
func (s *splitter) json(data []byte) (int, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	consumed := 0
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return consumed, nil
		}
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				err = fmt.Errorf("json: line %d: %v", lineAt(data, int(se.Offset)), se)
			}
			return consumed, err
		}
		s.values++
		consumed = int(dec.InputOffset())
		if string(bytes.TrimSpace(raw)) == "null" {
			s.nulls++
			continue
		}
		s.add(raw)
	}
}

// yaml splits data[pos:] into documents at kubectl's separator lines.
func (s *splitter) yaml(data []byte, pos int) error {
	line := lineAt(data, pos)
	docStart, docLine := pos, line
	for pos < len(data) {
		next := len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			next = pos + i + 1
		}
		if l := data[pos:next]; bytes.HasPrefix(l, []byte("---")) {
			if rest := strings.TrimSpace(string(l[3:])); rest != "" && rest[0] != '#' {
				return fmt.Errorf("yaml: line %d: invalid document separator: only a comment may follow --- on its line, not %q", line, rest)
			}
			if err := s.yamlDoc(data[docStart:pos], docLine); err != nil {
				return err
			}
			docStart, docLine = next, line+1
		}
		pos = next
		line++
	}
	return s.yamlDoc(data[docStart:], docLine)
}

// yamlDoc parses one document, whose first line is line firstLine of the
// stream.
func (s *splitter) yamlDoc(doc []byte, firstLine int) error {
	off := firstLine - 1
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if err == io.EOF {
			return nil // blank or only comments
		}
		return syntaxError(doc, err, off)
	}
	var more yaml.Node
	if err := dec.Decode(&more); err != io.EOF {
		// kubectl's parser stops at the end marker and drops the rest.
		line := firstLine
		for i, l := range bytes.SplitAfter(doc, []byte("\n")) {
			if bytes.HasPrefix(l, []byte("...")) {
				line += i
				break
			}
		}
		return fmt.Errorf(`yaml: line %d: content after the document end marker "...": separate documents with ---`, line)
	}
	c := converter{budget: maxAliasBytes, off: off}
	v, err := c.value(&n)
	if err != nil {
		return err
	}
	if v == nil {
		return nil // null
	}
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.add(j)
	return nil
}

// syntaxError reports a YAML syntax error as kubectl does: it parses with
// go-yaml v2 (through sigs.k8s.io/yaml), which for some errors names
// another line than v3 (a tab that breaks the indentation of line 5: v2
// says line 5, v3 line 4). v2 only parses here (decoding into struct{}
// expands no aliases). The line is then shifted by off, the lines of the
// stream before the document.
func syntaxError(doc []byte, err error, off int) error {
	var none struct{}
	var te *yaml2.TypeError
	if err2 := yaml2.Unmarshal(doc, &none); err2 != nil && !errors.As(err2, &te) {
		err = err2
	}
	return shiftLine(cleanYAMLError(err), off)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+):`)

// shiftLine adds off to the line number of a "yaml: line N: ..." error.
func shiftLine(err error, off int) error {
	msg := err.Error()
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil || off == 0 {
		return err
	}
	n, _ := strconv.Atoi(m[1])
	return fmt.Errorf("yaml: line %d:%s", n+off, msg[len(m[0]):])
}

// cleanYAMLError puts a multi-line yaml error on one line.
func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New("yaml: " + strings.Join(te.Errors, "; "))
	}
	return errors.New(strings.Join(strings.Fields(err.Error()), " "))
}

// converter turns a yaml.v3 node tree into JSON-encodable values with YAML
// 1.2 scalar rules: only true/false are booleans, and strings stay strings
// verbatim (an unquoted y or 2024-01-02 is the string "y" or "2024-01-02",
// never a boolean or a timestamp), so that typed decoding then sees what
// the author wrote.
type converter struct {
	budget  int                // bytes that alias expansion may still add
	off     int                // lines of the stream before the document
	inAlias int                // depth of alias expansion
	open    map[*yaml.Node]int // collections being converted: an alias to one is a cycle
	depth   int
}

// maxDepth bounds the nesting of collections in one document.
const maxDepth = 1000

var errAliasBudget = fmt.Errorf("yaml: document expands to more than %d MiB through aliases", maxAliasBytes>>20)

// spend counts a node copied through an alias.
func (c *converter) spend(n *yaml.Node) error {
	if c.inAlias > 0 {
		c.budget -= aliasNodeCost + len(n.Value)
		if c.budget < 0 {
			return errAliasBudget
		}
	}
	return nil
}

// line is n's line in the stream.
func (c *converter) line(n *yaml.Node) int { return c.off + n.Line }

func (c *converter) value(n *yaml.Node) (any, error) {
	if err := c.spend(n); err != nil {
		return nil, err
	}
	if n.Kind == yaml.SequenceNode || n.Kind == yaml.MappingNode {
		if c.open[n] > 0 {
			return nil, fmt.Errorf("yaml: line %d: alias refers to a collection that contains it", c.line(n))
		}
		c.depth++
		if c.depth > maxDepth {
			return nil, fmt.Errorf("yaml: line %d: nested too deeply", c.line(n))
		}
		if c.open == nil {
			c.open = map[*yaml.Node]int{}
		}
		c.open[n]++
		defer func() {
			c.open[n]--
			c.depth--
		}()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.value(n.Content[0])
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, fmt.Errorf("yaml: line %d: unknown alias", c.line(n))
		}
		c.inAlias++
		defer func() { c.inAlias-- }()
		return c.value(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, item := range n.Content {
			v, err := c.value(item)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := map[string]any{}
		lines := map[string]int{}
		if err := c.mapping(n, out, lines, false); err != nil {
			return nil, err
		}
		return out, nil
	case yaml.ScalarNode:
		return c.scalar(n)
	}
	return nil, fmt.Errorf("yaml: line %d: unexpected node", c.line(n))
}

// mapping adds the pairs of n to out. Explicit keys win over merged ones
// ("<<: *anchor"); a key repeated explicitly is an error, as kubectl's
// strict decoding makes it.
func (c *converter) mapping(n *yaml.Node, out map[string]any, lines map[string]int, merged bool) error {
	if len(n.Content)%2 != 0 {
		return fmt.Errorf("yaml: line %d: malformed mapping", c.line(n))
	}
	// Explicit keys first, then merges, so that explicit keys win
	// whatever their position.
	var merges []*yaml.Node
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("yaml: line %d: mapping key is not a scalar", c.line(k))
		}
		if err := c.spend(k); err != nil {
			return err
		}
		key := k.Value
		if _, seen := out[key]; seen {
			if merged {
				continue
			}
			if line, ok := lines[key]; ok {
				return fmt.Errorf("yaml: line %d: mapping key %q already defined at line %d", c.line(k), key, line)
			}
		}
		val, err := c.value(v)
		if err != nil {
			return err
		}
		out[key] = val
		if !merged {
			lines[key] = c.line(k)
		}
	}
	for _, m := range merges {
		if err := c.merge(m, out, lines); err != nil {
			return err
		}
	}
	return nil
}

// merge applies a "<<" value: a mapping, an alias of one, or a sequence of
// those.
func (c *converter) merge(m *yaml.Node, out map[string]any, lines map[string]int) error {
	if err := c.spend(m); err != nil {
		return err
	}
	if m.Kind == yaml.AliasNode && m.Alias != nil {
		c.inAlias++
		defer func() { c.inAlias-- }()
		return c.merge(m.Alias, out, lines)
	}
	switch m.Kind {
	case yaml.MappingNode:
		if c.open[m] > 0 {
			return fmt.Errorf("yaml: line %d: merge refers to a mapping that contains it", c.line(m))
		}
		if c.open == nil {
			c.open = map[*yaml.Node]int{}
		}
		c.open[m]++
		defer func() { c.open[m]-- }()
		return c.mapping(m, out, lines, true)
	case yaml.SequenceNode:
		for _, item := range m.Content {
			if err := c.merge(item, out, lines); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("yaml: line %d: map merge requires a mapping or a list of mappings", c.line(m))
}

// scalar converts a scalar by its resolved YAML 1.2 tag.
func (c *converter) scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, fmt.Errorf("yaml: line %d: %v", c.line(n), err)
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return json.Number(strconv.FormatInt(i, 10)), nil
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			return json.Number(strconv.FormatUint(u, 10)), nil
		}
		return c.float(n)
	case "!!float":
		return c.float(n)
	}
	// !!str, !!timestamp, !!binary (base64 text, as JSON carries bytes)
	// and any custom tag: the text as written.
	return n.Value, nil
}

func (c *converter) float(n *yaml.Node) (any, error) {
	var f float64
	if err := n.Decode(&f); err != nil {
		return nil, fmt.Errorf("yaml: line %d: invalid number %q", c.line(n), n.Value)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("yaml: line %d: %q is not a JSON number", c.line(n), n.Value)
	}
	return f, nil
}
