package conformance

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// liftedTag marks a rules: line whose items liftRules read.
const liftedTag = "!palisade-lifted-rules"

// liftRules reads, without the YAML parser, every expect.rules block whose
// items are all one-line flow mappings of plain words, the form generated
// expectations take ("- {from: x/a, to: y/b, verdict: allow}"): for tens
// of thousands of pairs, yaml.v3's node tree costs several times the
// matrix the scenario checks. Each lifted block's "rules:" line becomes
// "rules: !palisade-lifted-rules N" and its items blank lines, so that
// every other line keeps its number. A block with any other line, or an
// item the YAML reading could take differently (an alias, a quote, null,
// a repeated or unknown key, no verdict), is left to yaml.v3 whole.
func liftRules(data []byte) ([]byte, [][]ExpectRule) {
	if !bytes.Contains(data, []byte("verdict:")) {
		return data, nil
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	var blocks [][]ExpectRule
	for i := 0; i < len(lines); i++ {
		indent, ok := rulesKey(lines[i])
		if !ok {
			continue
		}
		rules, end := liftBlock(lines, i+1, indent)
		if rules == nil {
			continue
		}
		lines[i] = fmt.Appendf(nil, "%s %s %d\n", bytes.TrimRight(lines[i], " \r\n"), liftedTag, len(blocks))
		for k := i + 1; k < end; k++ {
			lines[k] = []byte("\n")
		}
		blocks = append(blocks, rules)
		i = end - 1
	}
	if blocks == nil {
		return data, nil
	}
	return bytes.Join(lines, nil), blocks
}

// liftBlock reads the items of a rules: block at indentation indent from
// lines[start:], and returns them and the index of the first line after
// them; nil when any line of the block is not a liftable item.
func liftBlock(lines [][]byte, start, indent int) ([]ExpectRule, int) {
	var rules []ExpectRule
	itemIndent := -1
	for j := start; j < len(lines); j++ {
		t := bytes.TrimRight(lines[j], " \r\n")
		if len(t) == 0 {
			continue // a blank line: the next line says whether the block goes on
		}
		in := len(t) - len(bytes.TrimLeft(t, " "))
		item := bytes.HasPrefix(t[in:], []byte("- "))
		if itemIndent < 0 {
			if !item || in < indent {
				return nil, 0 // no items: an empty or flow rules:, left to YAML
			}
			itemIndent = in
		}
		switch {
		case in < itemIndent || in == indent && t[in] != '-' && t[in] != '#':
			// A dedent, or the next key of rules:'s mapping: the end.
			// Trailing blank lines stay outside the block.
			for j > start && len(bytes.TrimSpace(lines[j-1])) == 0 {
				j--
			}
			return rules, j
		case in > itemIndent || !item:
			return nil, 0
		}
		r, ok := liftRule(t[in:])
		if !ok {
			return nil, 0
		}
		rules = append(rules, r)
	}
	return rules, len(lines)
}

// rulesKey reports whether line is "rules:" alone (spaces around), and
// its indentation.
func rulesKey(line []byte) (int, bool) {
	t := bytes.TrimRight(line, " \r\n")
	in := len(t) - len(bytes.TrimLeft(t, " "))
	return in, string(t[in:]) == "rules:"
}

// liftRule reads "- {k: v, k: v}" (a comment may follow) whose keys are from, to and verdict,
// each at most once with verdict required, and whose values are plain
// words that YAML reads as the same string.
func liftRule(item []byte) (ExpectRule, bool) {
	s := strings.TrimRight(string(item), " \r\n")
	s, ok := strings.CutPrefix(s, "- {")
	if !ok {
		return ExpectRule{}, false
	}
	s, rest, ok := strings.Cut(s, "}")
	if !ok || rest != "" && !strings.HasPrefix(strings.TrimLeft(rest, " "), "#") || rest != "" && rest[0] != ' ' {
		return ExpectRule{}, false // after the mapping: nothing, or a comment
	}
	var r ExpectRule
	var seen [3]bool
	for _, kv := range strings.Split(s, ", ") {
		k, v, ok := strings.Cut(kv, ": ")
		f := slices.Index(ruleFields, k)
		if !ok || f < 0 || seen[f] || !plainWord(v) {
			return ExpectRule{}, false
		}
		seen[f] = true
		switch f {
		case 0:
			r.From = v
		case 1:
			r.To = v
		case 2:
			allow, err := verdict(v)
			if err != nil {
				return ExpectRule{}, false
			}
			r.Allow = allow
		}
	}
	return r, seen[2]
}

// plainWord reports whether v is a scalar that YAML reads as the string v
// in a flow mapping: it starts with a letter or digit (not *, & or !),
// holds only letters, digits and / * . _ -, and is not null.
func plainWord(v string) bool {
	if v == "" || !isAlnum(v[0]) {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !isAlnum(c) && !strings.ContainsRune("/*._-", rune(c)) {
			return false
		}
	}
	switch v {
	case "null", "Null", "NULL":
		return false
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// liftedBlock returns the block a lifted rules: node names.
func liftedBlock(blocks [][]ExpectRule, value string) ([]ExpectRule, bool) {
	i, err := strconv.Atoi(value)
	if err != nil || i < 0 || i >= len(blocks) {
		return nil, false
	}
	return blocks[i], true
}
