package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// maxAliasNodes bounds the YAML nodes that alias expansion may add to one
// document, so that a small "billion laughs" input cannot exhaust memory.
// Nodes outside aliases are not counted: they are bounded by the input.
const maxAliasNodes = 1 << 18

// document is one non-empty document of an input stream, as JSON.
type document struct {
	index int // 1-based among the stream's non-empty documents
	json  []byte
}

// splitDocuments splits a YAML or JSON stream into its non-empty documents,
// converted to JSON. A stream whose first non-blank byte is '{' is read as a
// sequence of JSON values (kubectl accepts concatenated JSON objects); if
// its first value is not JSON, it is read as YAML. On a syntax error it
// returns the documents before it, the 1-based index the bad document would
// have had, and the error.
func splitDocuments(data []byte) ([]document, int, error) {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		docs, idx, err := splitJSON(data)
		if err == nil || idx > 1 {
			return docs, idx, err
		}
	}
	return splitYAML(data)
}

func splitJSON(data []byte) ([]document, int, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs []document
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return docs, 0, nil
		}
		if err != nil {
			return docs, len(docs) + 1, err
		}
		if string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		docs = append(docs, document{index: len(docs) + 1, json: raw})
	}
}

func splitYAML(data []byte) ([]document, int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []document
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			return docs, 0, nil
		}
		if err != nil {
			return docs, len(docs) + 1, cleanYAMLError(err)
		}
		c := converter{budget: maxAliasNodes}
		v, err := c.value(&n)
		if err != nil {
			return docs, len(docs) + 1, err
		}
		if v == nil {
			continue // empty document: only comments or "---"
		}
		j, err := json.Marshal(v)
		if err != nil {
			return docs, len(docs) + 1, err
		}
		docs = append(docs, document{index: len(docs) + 1, json: j})
	}
}

// cleanYAMLError puts a multi-line yaml.v3 error on one line.
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
	budget  int                // nodes that alias expansion may still visit
	inAlias int                // depth of alias expansion
	open    map[*yaml.Node]int // collections being converted: an alias to one is a cycle
	depth   int
}

// maxDepth bounds the nesting of collections in one document.
const maxDepth = 1000

var errAliasBudget = errors.New("yaml: document expands to too many nodes through aliases")

// spend counts a node visited through an alias.
func (c *converter) spend() error {
	if c.inAlias > 0 {
		c.budget--
		if c.budget < 0 {
			return errAliasBudget
		}
	}
	return nil
}

func (c *converter) value(n *yaml.Node) (any, error) {
	if err := c.spend(); err != nil {
		return nil, err
	}
	if n.Kind == yaml.SequenceNode || n.Kind == yaml.MappingNode {
		if c.open[n] > 0 {
			return nil, fmt.Errorf("yaml: line %d: alias refers to a collection that contains it", n.Line)
		}
		c.depth++
		if c.depth > maxDepth {
			return nil, fmt.Errorf("yaml: line %d: nested too deeply", n.Line)
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
			return nil, fmt.Errorf("yaml: line %d: unknown alias", n.Line)
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
		return scalar(n)
	}
	return nil, fmt.Errorf("yaml: line %d: unexpected node", n.Line)
}

// mapping adds the pairs of n to out. Explicit keys win over merged ones
// ("<<: *anchor"); a key repeated explicitly is an error, as kubectl's
// strict decoding makes it.
func (c *converter) mapping(n *yaml.Node, out map[string]any, lines map[string]int, merged bool) error {
	if len(n.Content)%2 != 0 {
		return fmt.Errorf("yaml: line %d: malformed mapping", n.Line)
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
			return fmt.Errorf("yaml: line %d: mapping key is not a scalar", k.Line)
		}
		key := k.Value
		if _, seen := out[key]; seen {
			if merged {
				continue
			}
			if line, ok := lines[key]; ok {
				return fmt.Errorf("yaml: line %d: mapping key %q already defined at line %d", k.Line, key, line)
			}
		}
		val, err := c.value(v)
		if err != nil {
			return err
		}
		out[key] = val
		if !merged {
			lines[key] = k.Line
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
	if err := c.spend(); err != nil {
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
			return fmt.Errorf("yaml: line %d: merge refers to a mapping that contains it", m.Line)
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
	return fmt.Errorf("yaml: line %d: map merge requires a mapping or a list of mappings", m.Line)
}

// scalar converts a scalar by its resolved YAML 1.2 tag.
func scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, fmt.Errorf("yaml: line %d: %v", n.Line, err)
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
		return floatValue(n)
	case "!!float":
		return floatValue(n)
	}
	// !!str, !!timestamp, !!binary (base64 text, as JSON carries bytes)
	// and any custom tag: the text as written.
	return n.Value, nil
}

func floatValue(n *yaml.Node) (any, error) {
	var f float64
	if err := n.Decode(&f); err != nil {
		return nil, fmt.Errorf("yaml: line %d: invalid number %q", n.Line, n.Value)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("yaml: line %d: %q is not a JSON number", n.Line, n.Value)
	}
	return f, nil
}
