package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// CRIO is a real CRI-O (runc behind runc-wrap, conmon, pinns: make tools,
// hack/build-crio.sh) run by a test, everything under one temp dir.
type CRIO struct {
	criDaemon
}

// crioConfig is CRI-O's configuration: state under dir (%[1]s), binaries
// from the tools dir (%[2]s), the locally built pause image (%[3]s),
// whether it streams container events (%[4]t). What
// this machine needs (hack/build-crio.sh, docs/design/crio.md): no
// iptables, so no host port mapping; no CAP_SYS_RESOURCE and no hugetlb
// hierarchy, fixed up by runc-wrap; memory limits down to 4 MiB; the pause
// image's own command (a pause_command runs without its arguments).
const crioConfig = `[crio]
root = "%[1]s/storage"
runroot = "%[1]s/runroot"
storage_driver = "overlay"
log_dir = "%[1]s/log"
version_file = "%[1]s/run/version"
version_file_persist = ""
clean_shutdown_file = "%[1]s/run/clean.shutdown"
internal_wipe = true
internal_repair = false

[crio.api]
listen = "%[1]s/crio.sock"
stream_address = "127.0.0.1"
stream_port = "0"

[crio.runtime]
default_runtime = "runc"
cgroup_manager = "cgroupfs"
conmon_cgroup = "pod"
selinux = false
seccomp_profile = ""
apparmor_profile = ""
enable_pod_events = %[4]t
namespaces_dir = "%[1]s/ns"
pinns_path = "%[2]s/pinns"
container_exits_dir = "%[1]s/exits"
container_attach_socket_dir = "%[1]s/attach"
hooks_dir = ["%[1]s/hooks"]
cdi_spec_dirs = ["%[1]s/cdi"]
decryption_keys_path = "%[1]s/keys"
irqbalance_config_file = "%[1]s/run/irqbalance"
irqbalance_config_restore_file = "%[1]s/run/orig_irq_banned_cpus"
enable_criu_support = false
drop_infra_ctr = false
log_to_journald = false
disable_hostport_mapping = true

[crio.runtime.runtimes.runc]
runtime_path = "%[2]s/runc-wrap"
runtime_type = "oci"
runtime_root = "%[1]s/runc"
monitor_path = "%[2]s/conmon"
monitor_cgroup = "pod"
container_min_memory = "4MiB"

[crio.image]
pause_image = "%[3]s"
pause_command = ""
signature_policy = "%[1]s/etc/policy.json"
signature_policy_dir = "%[1]s/policies"
big_files_temporary_dir = "%[1]s/tmp"
short_name_mode = "disabled"
namespaced_auth_dir = "%[1]s/auth"

[crio.network]
network_dir = "%[1]s/cni/net.d"
plugin_dirs = ["%[1]s/cni/bin"]

[crio.metrics]
enable_metrics = false

[crio.nri]
enable_nri = false
nri_listen = "%[1]s/nri/nri.sock"
`

// StartCRIO starts a real CRI-O with its own storage, state and socket in a
// temp dir, with BusyboxImage and PauseImage imported, and waits until its
// CRI socket answers Version. t.Cleanup removes every pod sandbox through
// CRI, stops CRI-O and kills what it left (conmon, containers) by PID, and
// unmounts what is left under the dir.
func StartCRIO(t testing.TB) *CRIO {
	t.Helper()
	return StartCRIOWith(t, CRIOOptions{})
}

// CRIOOptions change StartCRIO's CRI-O.
type CRIOOptions struct {
	// NoPodEvents leaves CRI-O's enable_pod_events at its default, off:
	// no GetContainerEvents stream.
	NoPodEvents bool
}

// StartCRIOWith is StartCRIO with options.
func StartCRIOWith(t testing.TB, opts CRIOOptions) *CRIO {
	t.Helper()
	tools := filepath.Dir(Bin(t, "crio"))
	for _, b := range []string{"runc", "runc-wrap", "conmon", "pinns", "copyimg", "loopback"} {
		Bin(t, b)
	}
	dir, err := os.MkdirTemp("", "podlife-crio-")
	if err != nil {
		t.Fatal(err)
	}
	c := &CRIO{criDaemon{Dir: dir, Socket: filepath.Join(dir, "crio.sock"), t: t}}
	c.Endpoint = "unix://" + c.Socket
	c.config = filepath.Join(dir, "etc", "crio.conf")
	c.logFile = filepath.Join(dir, "crio.log")
	for _, d := range []string{"etc/crio.conf.d", "etc/registries.conf.d", "cni/net.d", "cni/bin", "run", "log", "nri",
		"storage", "runroot", "exits", "attach", "ns", "hooks", "runc", "cdi", "tmp", "keys", "policies", "auth"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/crio.conf":   fmt.Sprintf(crioConfig, dir, tools, PauseImage, !opts.NoPodEvents),
		"etc/policy.json": `{"default":[{"type":"insecureAcceptAnything"}]}`,
		// No search registries: nothing short-named is ever pulled.
		"etc/registries.conf":            "",
		"etc/storage.conf":               fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n", dir+"/storage", dir+"/runroot"),
		"etc/containers.conf":            "",
		"cni/net.d/99-loopback.conflist": loopbackConflist,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(tools, "loopback"), filepath.Join(dir, "cni/bin/loopback")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.cleanup)
	c.importImages(t)
	c.start()
	return c
}

// importImages puts BusyboxImage and PauseImage into CRI-O's store with its
// own importer (copyimg), before it starts. The pause image here exits on
// SIGTERM: CRI-O stops a sandbox with SIGTERM and waits out the caller's
// deadline for a pause process that ignores it (sleep as PID 1 does).
func (c *CRIO) importImages(t testing.TB) {
	t.Helper()
	layer := busyboxLayer(t)
	pause := []string{"/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep 2147483647 & wait"}
	for ref, cmd := range map[string][]string{BusyboxImage: {"/bin/sh"}, PauseImage: pause} {
		path := filepath.Join(c.Dir, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
		dockerArchive(t, path, ref, layer, cmd)
		out, err := exec.Command(Bin(t, "copyimg"), "--root", c.Dir+"/storage", "--runroot", c.Dir+"/runroot",
			"--storage-driver", "overlay", "--signature-policy", c.Dir+"/etc/policy.json",
			"--image-name", ref, "--import-from", "docker-archive:"+path).CombinedOutput()
		if err != nil {
			t.Fatalf("copyimg %s: %v\n%s", ref, err, out)
		}
	}
}

func (c *CRIO) start() {
	c.t.Helper()
	env := []string{"CONTAINERS_REGISTRIES_CONF=" + c.Dir + "/etc/registries.conf",
		"CONTAINERS_STORAGE_CONF=" + c.Dir + "/etc/storage.conf", "CONTAINERS_CONF=" + c.Dir + "/etc/containers.conf"}
	cmd := startLoggedEnv(c.t, c.logFile, env, Bin(c.t, "crio"), "--config", c.config,
		"--config-dir", c.Dir+"/etc/crio.conf.d", "--registries-conf", c.Dir+"/etc/registries.conf",
		"--registries-conf-dir", c.Dir+"/etc/registries.conf.d")
	c.cmd, c.PID = cmd, cmd.Process.Pid
	c.waitAnswer("CRI-O")
}

// Restart starts CRI-O again on the same storage and socket; it restores
// the pods it finds.
func (c *CRIO) Restart(t testing.TB) { c.start() }

func (c *CRIO) cleanup() {
	ids := c.removeSandboxes()
	if c.cmd != nil {
		c.cmd.kill()
	}
	// conmon (and the containers under it) outlive CRI-O by design.
	for _, pid := range pidsMentioning(c.Dir) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if runc, err := os.ReadDir(filepath.Join(c.Dir, "runc")); err == nil {
		for _, e := range runc {
			ids = append(ids, e.Name())
			exec.Command(Bin(c.t, "runc"), "--root", filepath.Join(c.Dir, "runc"), "delete", "--force", e.Name()).Run()
		}
	}
	// libcni keeps each pod's result in /var/lib/cni/results (no option
	// moves it); a pod removed above has none left.
	for _, id := range ids {
		if m, _ := filepath.Glob("/var/lib/cni/results/*-" + id + "-*"); len(m) > 0 {
			for _, f := range m {
				os.Remove(f)
			}
		}
	}
	removeCgroups(ids)
	unmountUnder(c.Dir)
	if !c.t.Failed() {
		os.RemoveAll(c.Dir)
	} else {
		c.t.Logf("CRI-O dir kept for inspection: %s", c.Dir)
	}
}

// removeCgroups removes the cgroupfs directories CRI-O made for these pods
// and containers under its default parent (/crio), in every hierarchy, and
// the parent once no other CRI-O uses it.
func removeCgroups(ids []string) {
	hier, _ := filepath.Glob("/sys/fs/cgroup/*/crio")
	for _, h := range hier {
		ents, _ := os.ReadDir(h)
		for _, e := range ents {
			for _, id := range ids {
				if e.IsDir() && strings.Contains(e.Name(), id) {
					os.Remove(filepath.Join(h, e.Name()))
				}
			}
		}
		os.Remove(h) // fails while another CRI-O's pods are in it
	}
}
