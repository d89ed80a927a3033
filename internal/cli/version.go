package cli

import (
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

// versionInfo is what palisade version reports, from the build
// information the Go toolchain embeds in the binary.
type versionInfo struct {
	Module   string `json:"module"`
	Version  string `json:"version"` // from a checkout "(devel)", or a pseudo-version when Go stamps VCS information
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
}

// readBuildInfo is debug.ReadBuildInfo; tests replace it.
var readBuildInfo = debug.ReadBuildInfo

func buildVersion() versionInfo {
	v := versionInfo{Version: "unknown", Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	bi, ok := readBuildInfo()
	if !ok {
		return v
	}
	v.Module = bi.Main.Path
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		case "GOOS":
			v.OS = s.Value
		case "GOARCH":
			v.Arch = s.Value
		}
	}
	return v
}

func versionFlags(s Streams) (*flag.FlagSet, func(pos []string) error) {
	fs := newFlags("version", s)
	out := fs.String("o", "text", "output: text, json or yaml")
	return fs, func(pos []string) error {
		if err := noArgs("version", pos); err != nil {
			return err
		}
		if err := checkOutput(*out); err != nil {
			return err
		}
		v := buildVersion()
		if *out != "text" {
			return writeDoc(s.Out, *out, v)
		}
		fmt.Fprintf(s.Out, "palisade %s\n", esc(v.Version))
		if v.Module != "" {
			fmt.Fprintf(s.Out, "  module:   %s\n", esc(v.Module))
		}
		rev := "unknown (the build recorded no VCS information, e.g. -buildvcs=false)"
		if v.Revision != "" {
			rev = esc(v.Revision)
			if v.Time != "" {
				rev += " (" + esc(v.Time) + ")"
			}
			if v.Modified {
				rev += ", modified"
			}
		}
		fmt.Fprintf(s.Out, "  revision: %s\n", rev)
		fmt.Fprintf(s.Out, "  go:       %s %s/%s\n", esc(v.Go), esc(v.OS), esc(v.Arch))
		return nil
	}
}
