package findings

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/palisade-net/palisade/internal/model"
)

// TestSARIF checks the structure code scanning reads: version and
// $schema, the rules with their ids, and per result a known ruleId, its
// level, message.text and the manifest's path and line.
func TestSARIF(t *testing.T) {
	in := []Finding{
		{Code: DefaultDenyBlocksDNS, Severity: Warning, Kind: "NetworkPolicy", Key: model.Key{Namespace: "default", Name: "deny"},
			Field: "spec.policyTypes", Message: "m", Fix: "f", File: "examples/seed/default-deny-all.yaml", Line: 1},
		{Code: RedundantRule, Severity: Info, Kind: "NetworkPolicy", Key: model.Key{Namespace: "a", Name: "b"},
			Field: "spec.ingress[1]", Message: "m", Fix: "f", File: "dir with space/x#1.yaml"},
		{Code: PolicyNamespaceMissing, Severity: Error, Kind: "NetworkPolicy", Key: model.Key{Namespace: "a", Name: "c"},
			Field: "metadata.namespace", Message: "m", Fix: "f"},
	}
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, in); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Version string `json:"version"`
		Schema  string `json:"$schema"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID               string `json:"id"`
						ShortDescription struct {
							Text string `json:"text"`
						} `json:"shortDescription"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Message   struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					PhysicalLocation *struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region *struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
					LogicalLocations []struct {
						FullyQualifiedName string `json:"fullyQualifiedName"`
					} `json:"logicalLocations"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || log.Schema != "https://json.schemastore.org/sarif-2.1.0.json" {
		t.Errorf("version %q, $schema %q", log.Version, log.Schema)
	}
	if len(log.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(log.Runs))
	}
	run := log.Runs[0]
	if run.Tool.Driver.Name == "" || len(run.Tool.Driver.Rules) != len(Rules) {
		t.Errorf("driver %q with %d rules, want %d", run.Tool.Driver.Name, len(run.Tool.Driver.Rules), len(Rules))
	}
	ids := map[string]int{}
	for i, r := range run.Tool.Driver.Rules {
		if _, dup := ids[r.ID]; dup || r.ID == "" || r.ShortDescription.Text == "" {
			t.Errorf("rule %d: id %q (duplicate: %v), description %q", i, r.ID, dup, r.ShortDescription.Text)
		}
		ids[r.ID] = i
	}
	want := []struct {
		level, uri string
		line       int
	}{
		{"warning", "examples/seed/default-deny-all.yaml", 1},
		{"note", "dir%20with%20space/x%231.yaml", 0},
		{"error", "", 0},
	}
	if len(run.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(run.Results), len(want))
	}
	for i, r := range run.Results {
		w := want[i]
		if idx, ok := ids[r.RuleID]; !ok || idx != r.RuleIndex || r.RuleID != in[i].Code {
			t.Errorf("result %d: ruleId %q ruleIndex %d, want %s at its index", i, r.RuleID, r.RuleIndex, in[i].Code)
		}
		if r.Level != w.level || r.Message.Text == "" {
			t.Errorf("result %d: level %q message %q, want level %q and a message", i, r.Level, r.Message.Text, w.level)
		}
		if len(r.Locations) != 1 || len(r.Locations[0].LogicalLocations) != 1 {
			t.Fatalf("result %d: locations %+v", i, r.Locations)
		}
		pl := r.Locations[0].PhysicalLocation
		switch {
		case w.uri == "" && pl != nil:
			t.Errorf("result %d: a physical location without a file", i)
		case w.uri != "" && (pl == nil || pl.ArtifactLocation.URI != w.uri):
			t.Errorf("result %d: physical location %+v, want uri %q", i, pl, w.uri)
		case w.line > 0 && (pl.Region == nil || pl.Region.StartLine != w.line):
			t.Errorf("result %d: region %+v, want startLine %d", i, pl.Region, w.line)
		case w.uri != "" && w.line == 0 && pl.Region != nil:
			t.Errorf("result %d: region %+v for an unknown line", i, pl.Region)
		}
	}
}
