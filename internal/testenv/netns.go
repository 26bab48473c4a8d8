package testenv

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
)

// netnsEnv marks a test binary re-executed by MainInNetns inside its own
// network namespace.
const netnsEnv = "PODLIFE_TEST_NETNS"

// MainInNetns runs the package's tests in a network namespace the test binary
// creates for itself (with only lo, brought up), and returns the exit code
// for TestMain. Inside it a cluster's node address (Kubelet.NodeIP) is an
// address of that namespace alone: the API server can proxy to a
// hostNetwork pod there (its proxy refuses loopback addresses) while no
// traffic reaches any network but the test's own. With -short, or when not
// root, the tests run as they are.
//
// Every package whose tests start a kubelet (it holds the node address, and
// dials it to probe hostNetwork pods) uses it.
//
// The parent re-executes the binary with CLONE_NEWNET, passes on SIGINT and
// SIGTERM, and exits with the child's code; the child gets SIGTERM should the
// parent die.
func MainInNetns(m *testing.M) int {
	flag.Parse()
	if os.Getenv(netnsEnv) != "" {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: in the test's network namespace, ip link set lo up: %v: %s\n", err, out)
			return 1
		}
		return m.Run()
	}
	if testing.Short() || os.Geteuid() != 0 || fuzzing() {
		return m.Run()
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: re-executing in a network namespace: %v\n", err)
		return 1
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGTERM}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: re-executing in a network namespace (CLONE_NEWNET): %v\n", err)
		return 1
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	if cmd.ProcessState != nil && cmd.ProcessState.Exited() {
		return cmd.ProcessState.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "testenv: the tests in the network namespace: %v\n", err)
	return 1
}

// fuzzing reports whether go test -fuzz runs the binary (as the coordinator
// or a worker): fuzz targets start no real components.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// InOwnNetns reports whether the tests run in MainInNetns's namespace.
func InOwnNetns() bool { return os.Getenv(netnsEnv) != "" }
