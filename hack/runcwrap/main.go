// Command runcwrap stands in front of runc as CRI-O's runtime_path in the
// tests (hack/build-crio.sh installs it as runc-wrap beside runc), for what
// this machine lacks and containerd tolerates by itself. Before it execs the
// real runc (beside this binary) it edits the OCI bundle's config.json
// (create/run --bundle) or an exec's --process file:
//   - a negative process.oomScoreAdj becomes 0: without CAP_SYS_RESOURCE runc fails with
//     "nsexec: failed to update /proc/self/oom_score_adj: Permission denied"
//     (CRI-O's infra container is always -998, kubelet's Guaranteed pods -997);
//   - linux.resources.hugepageLimits is dropped when no cgroup v1 hierarchy has the
//     hugetlb controller (and the host is not pure cgroup v2): CRI-O sees "hugetlb" in
//     /proc/cgroups and passes kubelet's limits on, and runc fails with "cannot set
//     hugetlb limit: container could not join or create cgroup" (containerd drops them
//     itself: tolerate_missing_hugetlb_controller).
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// hugetlbMissing reports whether no cgroup v1 hierarchy has the hugetlb
// controller on a host that is not pure cgroup v2.
func hugetlbMissing() bool {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return false // pure cgroup v2: runc handles it
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, " - cgroup "); i >= 0 && strings.Contains(l[i:], "hugetlb") {
			return false
		}
	}
	return true
}

// edit applies the fix-ups to a bundle's config.json, or to an exec's
// process file; a file it cannot read or parse goes to runc as it is (runc
// then says what is wrong with it).
func edit(path string, process bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var doc map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if d.Decode(&doc) != nil {
		return
	}
	changed := false
	proc := doc
	if !process {
		proc, _ = doc["process"].(map[string]any)
	}
	if proc != nil {
		if n, ok := proc["oomScoreAdj"].(json.Number); ok && strings.HasPrefix(string(n), "-") {
			proc["oomScoreAdj"] = 0
			changed = true
		}
	}
	if !process && hugetlbMissing() {
		if lx, ok := doc["linux"].(map[string]any); ok {
			if r, ok := lx["resources"].(map[string]any); ok {
				if _, ok := r["hugepageLimits"]; ok {
					delete(r, "hugepageLimits")
					changed = true
				}
			}
		}
	}
	if changed {
		out, err := json.Marshal(doc)
		if err == nil {
			err = os.WriteFile(path, out, 0o600)
		}
		if err != nil {
			os.Stderr.WriteString("runc-wrap: " + path + ": " + err.Error() + "\n")
		}
	}
}

func main() {
	args := os.Args[1:]
	for i, a := range args {
		next := ""
		if i+1 < len(args) {
			next = args[i+1]
		}
		switch {
		case a == "--bundle" || a == "-b":
			edit(filepath.Join(next, "config.json"), false)
		case strings.HasPrefix(a, "--bundle="):
			edit(filepath.Join(strings.TrimPrefix(a, "--bundle="), "config.json"), false)
		case a == "--process" || a == "-p":
			edit(next, true)
		case strings.HasPrefix(a, "--process="):
			edit(strings.TrimPrefix(a, "--process="), true)
		}
	}
	self, _ := os.Executable()
	runc := filepath.Join(filepath.Dir(self), "runc")
	err := syscall.Exec(runc, append([]string{runc}, args...), os.Environ())
	os.Stderr.WriteString("runc-wrap: exec " + runc + ": " + err.Error() + "\n")
	os.Exit(127)
}
