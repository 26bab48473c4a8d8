package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
)

// TestKubeletPodsAPIFaults: the agent follows a real 1.37 kubelet's Pods API
// (its watch) while the kubelet is restarted, killed, and hung with its
// socket removed. Each time the agent says what happened in one line, falls
// back to /pods or resumes the watch by itself, and journals every
// transition exactly once (checkJournal: --upstream off keeps them all).
func TestKubeletPodsAPIFaults(t *testing.T) {
	bin, ctd, k := startFaultNode(t, "podlife-podsapi")
	sock := k.PodsAPISocket()
	ag := startFaultAgent(t, bin, "--node-name", k.Name, "--cri-endpoint", ctd.Endpoint, "--kubelet-url", k.ReadOnlyURL,
		"--kubelet-pods-api-socket", sock, "--upstream", "off")
	ag.waitFaultPods(k.Name)
	mode := func() (string, string) {
		r, _ := ag.pods()
		h := r.Sources[lifecycle.SourceKubelet]
		return h.Mode, h.ModeReason
	}
	waitMode := func(want string, limit time.Duration) {
		t.Helper()
		testenv.Eventually(t, "kubelet source mode "+want, limit, func() bool {
			m, _ := mode()
			return m == want && ag.sourceUp(lifecycle.SourceKubelet) == "1"
		})
	}
	waitMode(kubelet.ModePodsAPI, 30*time.Second)

	t.Run("kubelet restarted", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		k.Restart(t)
		// The watch broke and the socket was gone or refusing for a moment;
		// the restarted kubelet's new socket is followed again.
		waitMode(kubelet.ModePodsAPI, 60*time.Second)
		ag.waitUp(lifecycle.SourceKubelet, 60*time.Second)
		ag.waitFaultPods(k.Name)
		ag.checkJournal(before, lifecycle.SourceKubelet)
	})

	t.Run("kubelet killed, then started", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		k.Kill()
		// SIGKILL leaves the socket file behind: refused; /pods refused too.
		ag.waitDown(lifecycle.SourceKubelet, 60*time.Second, "connection refused")
		k.Start(t)
		waitMode(kubelet.ModePodsAPI, 60*time.Second)
		ag.waitUp(lifecycle.SourceKubelet, 60*time.Second)
		ag.checkJournal(before, lifecycle.SourceKubelet)
	})

	t.Run("kubelet hung, its socket removed", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		resume := k.Hang(t)
		if err := os.Remove(sock); err != nil {
			t.Fatal(err)
		}
		ag.waitDown(lifecycle.SourceKubelet, 60*time.Second, "timed out")
		resume()
		// The kubelet answers /pods again; its socket is gone until it
		// restarts, so the agent stays on /pods and says why.
		waitMode(kubelet.ModePodsHTTP, 60*time.Second)
		ag.waitUp(lifecycle.SourceKubelet, 60*time.Second)
		if _, why := mode(); !strings.Contains(why, sock) || !strings.Contains(why, "no such file or directory") {
			t.Errorf("mode reason %q: want the missing socket %s", why, sock)
		}
		ag.waitFaultPods(k.Name)
		ag.checkJournal(before, lifecycle.SourceKubelet)
		// A kubelet restart brings the socket back: followed again.
		k.Restart(t)
		waitMode(kubelet.ModePodsAPI, 60*time.Second)
	})
}
