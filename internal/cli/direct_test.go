package cli

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podlife/podlife/internal/simnode"
	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
)

// silentListener accepts connections and never answers on them, until the
// test ends.
func silentListener(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l
}

// --direct reads both sources once: what a simulated node serves, as soon
// as both have answered.
func TestDirectSnapshot(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	node, err := simnode.Start(ctx, simnode.Options{Dir: t.TempDir(), Pods: 2}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	d := directFlags{criEndpoint: node.CRIEndpoint, kubelet: kubelet.Config{URL: node.KubeletURL}}
	snap, err := d.snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pods) != 2 || !snap.Sources[lifecycle.SourceRuntime].Up || !snap.Sources[lifecycle.SourceKubelet].Up {
		t.Fatalf("%d pods, sources %+v; want the 2 simulated pods, both sources up", len(snap.Pods), snap.Sources)
	}
}

// A source that refuses is an answer (the snapshot says why it is down); a
// source that says nothing within the timeout is shown down for that, and
// the other's view is still there.
func TestDirectSnapshotSources(t *testing.T) {
	dir := t.TempDir()
	refusedCRI := "unix://" + filepath.Join(dir, "none.sock")
	silentCRI := "unix://" + silentListener(t, "unix", filepath.Join(dir, "silent.sock")).Addr().String()
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedKubelet := "http://" + refused.Addr().String()
	refused.Close()
	silentKubelet := "http://" + silentListener(t, "tcp", "127.0.0.1:0").Addr().String()
	const silent = "no answer within 300ms"
	tests := []struct {
		name             string
		cri, kubelet     string
		runtime, kubeErr string // the sources' errors: silent, or "" for any other
	}{
		{"both refuse", refusedCRI, refusedKubelet, "", ""},
		{"both silent", silentCRI, silentKubelet, silent, silent},
		{"runtime silent", silentCRI, refusedKubelet, silent, ""},
		{"kubelet silent", refusedCRI, silentKubelet, "", silent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := directFlags{criEndpoint: tc.cri, kubelet: kubelet.Config{URL: tc.kubelet}, timeout: 300 * time.Millisecond}
			snap, err := d.snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for s, want := range map[string]string{lifecycle.SourceRuntime: tc.runtime, lifecycle.SourceKubelet: tc.kubeErr} {
				h := snap.Sources[s]
				if h.Up || h.LastError == "" || (want == silent) != (h.LastError == silent) {
					t.Errorf("%s: %+v, want down with %q", s, h, cmp.Or(want, "its error"))
				}
			}
		})
	}
}

// A source setting the source refuses is said as the agent says it, and is
// a usage error (exit code 2).
func TestDirectConfigError(t *testing.T) {
	_, err := directFlags{criEndpoint: "tcp://x"}.snapshot(context.Background())
	if !errors.Is(err, ErrUsage) || err.Error() != `config: cri-endpoint: cri-endpoint "tcp://x": want unix:///path/to/socket` {
		t.Fatalf("%v", err)
	}
	_, err = directFlags{criEndpoint: "unix:///x", kubelet: kubelet.Config{URL: "ftp://x"}}.snapshot(context.Background())
	if !errors.Is(err, ErrUsage) || !strings.HasPrefix(err.Error(), "config: kubelet-url: ") {
		t.Fatalf("%v", err)
	}
}
