// Package statefile writes the files of a lab's state directory
// (names.StateDir: state.json, kube.json, the pidfile, the agents'
// credentials), which the lab's daemon and the CLI read while they change:
// a reader sees the old file or the new one, never part of one. The lab,
// its daemon and its agents all write there, so it is a room of its own.
package statefile

import "os"

// Write writes data to path by writing path.tmp and renaming it over path.
func Write(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
