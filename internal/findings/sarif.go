package findings

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// SARIF 2.1.0, the parts CI systems read to show findings inline
// (GitHub code scanning, GitLab, Azure DevOps): the tool and its rules,
// and per result the rule, level, message and file location.
const (
	SARIFVersion = "2.1.0"
	SARIFSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
)

type sarifLog struct {
	Version string     `json:"version"`
	Schema  string     `json:"$schema"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string       `json:"id"`
	Name                 string       `json:"name"`
	ShortDescription     sarifText    `json:"shortDescription"`
	Help                 sarifText    `json:"help"`
	DefaultConfiguration sarifDefault `json:"defaultConfiguration"`
}

type sarifDefault struct {
	Level string `json:"level"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	RuleIndex int             `json:"ruleIndex"`
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

// level is SARIF's name for a severity.
func (s Severity) level() string {
	if s == Info {
		return "note"
	}
	return s.String()
}

// WriteSARIF writes fs as one SARIF 2.1.0 run of palisade lint. File
// paths become relative URIs with forward slashes, as code scanning
// matches them against the repository.
func WriteSARIF(w io.Writer, fs []Finding) error {
	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{Name: "palisade lint",
			InformationURI: "https://github.com/palisade-net/palisade/blob/main/docs/lint.md"}},
		Results: []sarifResult{},
	}
	index := map[string]int{}
	for i, r := range Rules {
		index[r.Code] = i
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: r.Code, Name: r.Name,
			ShortDescription:     sarifText{r.Summary},
			Help:                 sarifText{"Fix: " + r.Fix},
			DefaultConfiguration: sarifDefault{r.Severity.level()},
		})
	}
	for _, f := range fs {
		loc := sarifLocation{LogicalLocations: []sarifLogical{{
			Name:               f.Key.Name,
			FullyQualifiedName: fmt.Sprintf("%s %s", f.Object(), f.Field),
			Kind:               "object",
		}}}
		if f.File != "" {
			loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: uri(f.File)}}
			if f.Line > 0 {
				loc.PhysicalLocation.Region = &sarifRegion{StartLine: f.Line}
			}
		}
		run.Results = append(run.Results, sarifResult{
			RuleID: f.Code, RuleIndex: index[f.Code], Level: f.Severity.level(),
			Message:   sarifText{fmt.Sprintf("%s %s: %s. Fix: %s", f.Object(), f.Field, f.Message, f.Fix)},
			Locations: []sarifLocation{loc},
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Version: SARIFVersion, Schema: SARIFSchema, Runs: []sarifRun{run}})
}

// uri turns a path into a relative URI reference (percent-encoding the
// few characters that would otherwise change its meaning).
func uri(path string) string {
	p := filepath.ToSlash(filepath.Clean(path))
	p = strings.NewReplacer("%", "%25", "#", "%23", "?", "%3F", " ", "%20").Replace(p)
	if filepath.IsAbs(path) {
		return "file://" + p
	}
	return p
}
