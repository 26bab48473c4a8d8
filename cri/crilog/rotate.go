package crilog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// rotatedStamp is the layout of the suffix the kubelet's container log
// manager gives a rotated log (timestampFormat in
// kubernetes/kubernetes pkg/kubelet/logs/container_log_manager.go:
// rotateLatestLog renames <log> to <log>.<stamp>, and a later rotation
// compresses it to <log>.<stamp>.gz).
const rotatedStamp = "20060102-150405"

// rotatedFile is one rotated file of a log.
type rotatedFile struct {
	path  string
	stamp string // the YYYYMMDD-HHMMSS suffix: fixed width, so its order is the files' order
	gz    bool
	size  int64
}

// rotated are the rotated files of one log.
type rotated []rotatedFile

// listRotated returns the rotated files of the log at path: path.<stamp>
// and path.<stamp>.gz. Temporary files of a compression (.tmp) and other
// names are not rotated files.
func listRotated(path string) (rotated, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("crilog: list rotated logs: %w", err)
	}
	var out rotated
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || e.IsDir() {
			continue
		}
		stamp, gz := strings.CutSuffix(rest, ".gz")
		if _, err := time.Parse(rotatedStamp, stamp); err != nil || len(stamp) != len(rotatedStamp) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, rotatedFile{path: filepath.Join(dir, e.Name()), stamp: stamp, gz: gz, size: info.Size()})
	}
	return out, nil
}

// newestPlain returns the newest uncompressed rotated file.
func (r rotated) newestPlain() (rotatedFile, bool) {
	var best rotatedFile
	ok := false
	for _, f := range r {
		if !f.gz && (!ok || f.stamp > best.stamp) {
			best, ok = f, true
		}
	}
	return best, ok
}

// olderThan reports whether a rotated file older than stamp, not empty,
// exists ("": any, all of them being older than the live log).
func (r rotated) olderThan(stamp string) bool {
	for _, f := range r {
		if (f.gz || f.size > 0) && (stamp == "" || f.stamp < stamp) {
			return true
		}
	}
	return false
}
