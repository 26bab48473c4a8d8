package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Containerd is a real containerd (CRI plugin, runc) run by a test.
type Containerd struct {
	criDaemon
}

// containerdConfig is a containerd 2.x config: everything under dir, host
// networking only (no CNI), our runc, and restrict_oom_score_adj because the
// test process lacks CAP_SYS_RESOURCE.
const containerdConfig = `version = 3
root = '%[1]s/root'
state = '%[1]s/state'
disabled_plugins = ['io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.zfs', 'io.containerd.snapshotter.v1.devmapper', 'io.containerd.snapshotter.v1.erofs', 'io.containerd.differ.v1.erofs', 'io.containerd.nri.v1.nri']

[grpc]
  address = '%[1]s/containerd.sock'

[ttrpc]
  address = '%[1]s/containerd.sock.ttrpc'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '%[2]s'
  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '%[3]s'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['%[1]s/cni/bin']
      conf_dir = '%[1]s/cni/net.d'
  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
  [plugins.'io.containerd.internal.v1.opt']
    path = '%[1]s/opt'
`

// StartContainerd starts a real containerd with its own root, state and
// socket in a temp dir and waits until its CRI socket answers Version.
// t.Cleanup removes every pod sandbox through CRI, kills containerd and any
// shim left behind by PID, and unmounts what is left under the dir.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	Bin(t, "containerd")
	Bin(t, "containerd-shim-runc-v2")
	dir, err := os.MkdirTemp("", "podlife-ctd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{criDaemon{Dir: dir, Socket: filepath.Join(dir, "containerd.sock"), t: t}}
	c.Endpoint = "unix://" + c.Socket
	c.config = filepath.Join(dir, "config.toml")
	c.logFile = filepath.Join(dir, "containerd.log")
	cfg := fmt.Sprintf(containerdConfig, dir, PauseImage, Bin(t, "runc"))
	if err := os.WriteFile(c.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.cleanup)
	c.start()
	return c
}

func (c *Containerd) start() {
	c.t.Helper()
	// containerd finds containerd-shim-runc-v2 on PATH.
	if tools := filepath.Dir(Bin(c.t, "containerd")); !strings.Contains(os.Getenv("PATH"), tools) {
		os.Setenv("PATH", tools+":"+os.Getenv("PATH"))
	}
	cmd := startLogged(c.t, c.logFile, Bin(c.t, "containerd"), "--config", c.config)
	c.cmd, c.PID = cmd, cmd.Process.Pid
	c.waitAnswer("containerd")
}

// Restart starts containerd again on the same root and socket.
func (c *Containerd) Restart(t testing.TB) { c.start() }

func (c *Containerd) cleanup() {
	c.removeSandboxes()
	if c.cmd != nil {
		c.cmd.kill()
	}
	// Shims (and their containers) that outlived containerd.
	for _, pid := range pidsMentioning(c.Dir) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	unmountUnder(c.Dir)
	if !c.t.Failed() {
		os.RemoveAll(c.Dir)
	} else {
		c.t.Logf("containerd dir kept for inspection: %s", c.Dir)
	}
}

// pidsMentioning lists processes whose command line mentions s.
func pidsMentioning(s string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, pid)
		}
	}
	return out
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir) {
			mounts = append(mounts, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// loopbackConflist is a CNI network of the loopback plugin alone: enough for
// containerd to report the pod network ready (test pods use hostNetwork).
const loopbackConflist = `{"cniVersion": "1.0.0", "name": "podlife-loopback", "plugins": [{"type": "loopback"}]}
`

// EnableLoopbackCNI installs the CNI loopback plugin and a network of it alone
// in containerd's CNI dirs and waits until containerd reports NetworkReady,
// which a registered kubelet needs to turn its Node Ready.
func (c *Containerd) EnableLoopbackCNI(t testing.TB) {
	t.Helper()
	binDir, confDir := filepath.Join(c.Dir, "cni", "bin"), filepath.Join(c.Dir, "cni", "net.d")
	for _, d := range []string{binDir, confDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("CNI dir: %v", err)
		}
	}
	if err := os.Symlink(Bin(t, "loopback"), filepath.Join(binDir, "loopback")); err != nil && !os.IsExist(err) {
		t.Fatalf("CNI loopback plugin: %v", err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-loopback.conflist"), []byte(loopbackConflist), 0o644); err != nil {
		t.Fatalf("CNI network: %v", err)
	}
	rs, done, err := c.client()
	if err != nil {
		t.Fatalf("CRI client: %v", err)
	}
	defer done()
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := rs.Status(ctx, &runtimeapi.StatusRequest{})
		cancel()
		if err != nil {
			last = err.Error()
			continue
		}
		for _, cond := range st.GetStatus().GetConditions() {
			if cond.Type == runtimeapi.NetworkReady {
				if cond.Status {
					return
				}
				last = cond.Reason + ": " + cond.Message
			}
		}
	}
	t.Fatalf("containerd did not report NetworkReady within 30s: %s", last)
}
