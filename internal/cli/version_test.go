package cli

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	tests := []struct {
		name     string
		info     *debug.BuildInfo
		contains []string
		want     versionInfo
	}{
		{"release with VCS", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Path: "github.com/palisade-net/palisade", Version: "v0.3.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-05T07:00:00Z"},
				{Key: "vcs.modified", Value: "true"}, {Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"}}},
			[]string{"palisade v0.3.0\n", "revision: abc123 (2026-12-05T07:00:00Z), modified", "go:       go1.26.8 linux/arm64"},
			versionInfo{Module: "github.com/palisade-net/palisade", Version: "v0.3.0", Revision: "abc123", Time: "2026-12-05T07:00:00Z",
				Modified: true, Go: "go1.26.8", OS: "linux", Arch: "arm64"}},
		{"checkout without VCS stamp", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Path: "github.com/palisade-net/palisade", Version: "(devel)"}},
			[]string{"palisade (devel)\n", "revision: unknown"},
			versionInfo{Module: "github.com/palisade-net/palisade", Version: "(devel)", Go: "go1.26.8", OS: runtime.GOOS, Arch: runtime.GOARCH}},
		{"no build info", nil, []string{"palisade unknown\n"},
			versionInfo{Version: "unknown", Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}},
	}
	defer func(f func() (*debug.BuildInfo, bool)) { readBuildInfo = f }(readBuildInfo)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readBuildInfo = func() (*debug.BuildInfo, bool) { return tt.info, tt.info != nil }
			code, out, errs := run(t, "", "version")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			for _, s := range tt.contains {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			code, out, errs = run(t, "", "version", "-o", "json")
			var got versionInfo
			if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
				t.Fatalf("exit %d, %v: %s%s", code, err, out, errs)
			}
			if got != tt.want {
				t.Errorf("json %+v, want %+v", got, tt.want)
			}
		})
	}
	if code, _, _ := run(t, "", "version", "extra"); code != 2 {
		t.Errorf("version extra: exit %d, want 2", code)
	}
}

// TestVersionOfTestBinary reads the real build information: a test
// binary's main module is this one.
func TestVersionOfTestBinary(t *testing.T) {
	v := buildVersion()
	if v.Module != "github.com/palisade-net/palisade" || v.Version == "" || v.Go != runtime.Version() {
		t.Errorf("%+v", v)
	}
}
