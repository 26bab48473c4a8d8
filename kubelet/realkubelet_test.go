package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	sigyaml "sigs.k8s.io/yaml"

	"github.com/podlife/podlife/cri"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// staticPods are the real kubelet's static pods, in namespace real, with
// testenv's shared completed and ghost (sharedStaticPods).
const staticPods = `
serving: |
  apiVersion: v1
  kind: Pod
  metadata: {name: serving, namespace: real}
  spec:
    hostNetwork: true
    initContainers:
    - {name: setup, image: IMG, imagePullPolicy: Never, command: [sh, -c, "exit 0"]}
    containers:
    - name: web
      image: IMG
      imagePullPolicy: Never
      command: [sleep, "3600"]
      readinessProbe: {exec: {command: ["true"]}, periodSeconds: 1}
crashloop: |
  apiVersion: v1
  kind: Pod
  metadata: {name: crashloop, namespace: real}
  spec:
    hostNetwork: true
    containers:
    - {name: app, image: IMG, imagePullPolicy: Never, command: [sh, -c, "exit 7"]}
oom: |
  apiVersion: v1
  kind: Pod
  metadata: {name: oom, namespace: real}
  spec:
    hostNetwork: true
    containers:
    - name: hog
      image: IMG
      imagePullPolicy: Never
      command: [sh, -c, "x=$(dd if=/dev/zero bs=1M count=256 2>/dev/null | tr '\\0' x); sleep 3600"]
      resources: {limits: {memory: 64Mi}}
`

// sharedStaticPods are testenv's shared manifests among staticPods.
var sharedStaticPods = []string{"completed", "ghost"}

func getPods(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url + "/pods")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// TestRealKubelet runs a real standalone kubelet on a real containerd with
// static pods and checks that podlife reads /pods exactly as the kubelet
// reports it, and that the joined view classifies each pod correctly.
func TestRealKubelet(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (containerd, kubelet): not in -short")
	}
	ctd := testenv.StartContainerd(t)
	ctd.ImportImages(t)
	k := testenv.StartKubelet(t, ctd, "podlife-node")
	var manifests map[string]string
	if err := yamlUnmarshal([]byte(staticPods), &manifests); err != nil {
		t.Fatal(err)
	}
	for name, m := range manifests {
		k.AddStaticPod(t, name, strings.ReplaceAll(m, "IMG", testenv.BusyboxImage))
	}
	for _, name := range sharedStaticPods {
		k.AddStaticPod(t, name, testenv.PodManifest(t, name, name, "real"))
	}
	src, err := New(Config{URL: k.ReadOnlyURL, PollInterval: 200 * time.Millisecond}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.Run(ctx)
	rt, err := cri.New(cri.Config{Endpoint: ctd.Endpoint, Stream: true, RelistInterval: 200 * time.Millisecond}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	go rt.Run(ctx)

	byName := func(pods []*lifecycle.Pod, name string) *lifecycle.Pod {
		for _, p := range pods {
			if p.Name == name+"-podlife-node" {
				return p
			}
		}
		return nil
	}
	container := func(p *lifecycle.Pod, name string) *lifecycle.ContainerStatus {
		for i := range p.Containers {
			if p.Containers[i].Name == name {
				return &p.Containers[i]
			}
		}
		return nil
	}
	ready := func(pods []*lifecycle.Pod) string {
		checks := map[string]func(p *lifecycle.Pod) bool{
			"serving":   func(p *lifecycle.Pod) bool { c := container(p, "web"); return c != nil && c.Ready },
			"completed": func(p *lifecycle.Pod) bool { return p.Phase == lifecycle.PhaseSucceeded },
			"crashloop": func(p *lifecycle.Pod) bool {
				c := container(p, "app")
				return c != nil && c.RestartCount >= 2 && c.State.Reason == "CrashLoopBackOff"
			},
			"ghost": func(p *lifecycle.Pod) bool {
				c := container(p, "app")
				return c != nil && (c.State.Reason == "ErrImagePull" || c.State.Reason == "ImagePullBackOff")
			},
			"oom": func(p *lifecycle.Pod) bool {
				c := container(p, "hog")
				return c != nil && (c.State.Reason == "OOMKilled" || c.LastState.Reason == "OOMKilled")
			},
		}
		var missing []string
		for name, ok := range checks {
			if p := byName(pods, name); p == nil || !ok(p) {
				missing = append(missing, name)
			}
		}
		return strings.Join(missing, ",")
	}
	deadline := time.Now().Add(150 * time.Second)
	for {
		missing := ready(src.State().Pods)
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			body := getPods(t, k.ReadOnlyURL)
			t.Fatalf("pods not in their expected states: %s\n/pods: %s", missing, lastN(string(body), 3000))
		}
		time.Sleep(300 * time.Millisecond)
	}

	t.Run("podlife reads /pods as the kubelet reports it", func(t *testing.T) {
		body := getPods(t, k.ReadOnlyURL)
		fast, err := Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		var full corev1.PodList
		if err := json.Unmarshal(body, &full); err != nil {
			t.Fatal(err)
		}
		if len(fast) != len(full.Items) || len(fast) != 5 {
			t.Fatalf("%d vs %d pods", len(fast), len(full.Items))
		}
		for i, want := range full.Items {
			got := fast[i]
			if got.UID != string(want.UID) || string(got.Phase) != string(want.Status.Phase) || len(got.Conditions) != len(want.Status.Conditions) {
				t.Fatalf("pod %s: %+v", want.Name, got)
			}
			// Static pods (config source "file") carry the kubelet's live status.
			if src := want.Annotations["kubernetes.io/config.source"]; src != "file" || got.StatusFrom != lifecycle.FromKubelet {
				t.Fatalf("pod %s: config source %q, status from %q; want file, %q", want.Name, src, got.StatusFrom, lifecycle.FromKubelet)
			}
			for j, c := range want.Status.Conditions {
				g := got.Conditions[j]
				if g.Type != string(c.Type) || g.Status != string(c.Status) || g.Reason != c.Reason || !g.LastTransitionTime.Equal(c.LastTransitionTime.Time) {
					t.Fatalf("pod %s condition %s: %+v vs %+v", want.Name, c.Type, g, c)
				}
			}
			all := append(append([]corev1.ContainerStatus{}, want.Status.InitContainerStatuses...), want.Status.ContainerStatuses...)
			if len(all) != len(got.Containers) {
				t.Fatalf("pod %s: %d container statuses, want %d", want.Name, len(got.Containers), len(all))
			}
			for j, cs := range all {
				g := got.Containers[j]
				if g.Name != cs.Name || g.RestartCount != cs.RestartCount || g.Ready != cs.Ready || g.ContainerID != cs.ContainerID ||
					g.Image != cs.Image || g.ImageID != cs.ImageID || !sameState(g.State, cs.State) || !sameState(g.LastState, cs.LastTerminationState) {
					t.Fatalf("pod %s container %s:\n got %+v\nwant %+v", want.Name, cs.Name, g, cs)
				}
			}
		}
		crash := byName(fast, "crashloop")
		c := container(crash, "app")
		t.Logf("crashloop: %s restarts=%d last exit %d %s", c.State.Reason, c.RestartCount, c.LastState.ExitCode, c.LastState.Reason)
		if c.LastState.ExitCode != 7 {
			t.Fatalf("last exit %d, want 7", c.LastState.ExitCode)
		}
		before := c.RestartCount
		deadline := time.Now().Add(90 * time.Second)
		for {
			p := byName(src.State().Pods, "crashloop")
			if n := container(p, "app").RestartCount; n > before {
				t.Logf("restart count rose %d -> %d", before, n)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("restart count stuck at %d", before)
			}
			time.Sleep(time.Second)
		}
	})

	t.Run("HTTPS port with a self-signed certificate", func(t *testing.T) {
		s, err := New(Config{URL: k.HTTPSURL, InsecureSkipVerify: true, TokenFile: writeToken(t)}, quiet())
		if err != nil {
			t.Fatal(err)
		}
		s.Poll(ctx)
		if st := s.State(); !st.Health.Up || len(st.Pods) != 5 {
			t.Fatalf("health %+v, %d pods", st.Health, len(st.Pods))
		}
		v, err := New(Config{URL: k.HTTPSURL, CAFile: writeCA(t), TokenFile: writeToken(t)}, quiet())
		if err != nil {
			t.Fatal(err)
		}
		v.Poll(ctx)
		if st := v.State(); st.Health.Up || !strings.Contains(st.Health.LastError, "TLS verification failed") {
			t.Fatalf("verification against the wrong CA: %+v", st.Health)
		}
		// The kubelet's own self-signed certificate, pinned: verified for its node name.
		p, err := New(Config{URL: k.HTTPSURL, CAFile: writeCA(t), ServingCertFile: k.ServingCertFile, Node: k.Name, TokenFile: writeToken(t)}, quiet())
		if err != nil {
			t.Fatal(err)
		}
		p.Poll(ctx)
		if st := p.State(); !st.Health.Up || !st.TLS.Verified || !strings.Contains(st.TLS.Detail, "pinned in kubelet-serving-cert-file") {
			t.Fatalf("pinned kubelet certificate: %+v, TLS %+v", st.Health, st.TLS)
		}
	})

	// The kubelet process is stopped (SIGSTOP: it answers nothing, as a hung
	// or dead kubelet) and resumed: the source goes down and comes back up
	// with the same pods. (testenv cannot restart a kubelet on the same ports.)
	t.Run("kubelet stopped and resumed: down, then up again", func(t *testing.T) {
		s, err := New(Config{URL: k.ReadOnlyURL, PollInterval: 200 * time.Millisecond, Timeout: time.Second}, quiet())
		if err != nil {
			t.Fatal(err)
		}
		sctx, stop := context.WithCancel(ctx)
		defer stop()
		go s.Run(sctx)
		wait := func(what string, ok func(State) bool) State {
			t.Helper()
			deadline := time.Now().Add(30 * time.Second)
			for {
				st := s.State()
				if ok(st) {
					return st
				}
				if time.Now().After(deadline) {
					t.Fatalf("timed out waiting for %s; health %+v", what, st.Health)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		up := wait("up", func(st State) bool { return st.Health.Up && len(st.Pods) == 5 })
		resume := k.Hang(t)
		down := wait("down", func(st State) bool { return !st.Health.Up })
		if !strings.Contains(down.Health.LastError, "timed out") || len(down.Pods) != 5 || down.Generation <= up.Generation {
			t.Fatalf("while stopped: health %+v, %d pods, generation %d -> %d", down.Health, len(down.Pods), up.Generation, down.Generation)
		}
		t.Logf("kubelet stopped: %s", down.Health.LastError)
		resume()
		back := wait("up again", func(st State) bool { return st.Health.Up })
		if back.Health.LastError != "" || len(back.Pods) != 5 || back.Generation <= down.Generation || !back.Health.LastSuccess.After(up.Health.LastSuccess) {
			t.Fatalf("after resume: health %+v, %d pods, generation %d -> %d", back.Health, len(back.Pods), down.Generation, back.Generation)
		}
	})

	t.Run("joined with the real runtime: every pod in its stage", func(t *testing.T) {
		want := map[string]lifecycle.Stage{"serving": lifecycle.StageServing, "completed": lifecycle.StageTerminated,
			"crashloop": lifecycle.StageFailing, "ghost": lifecycle.StageFailing, "oom": lifecycle.StageFailing}
		deadline := time.Now().Add(30 * time.Second)
		for {
			ks, rs := src.State(), rt.State()
			snap := lifecycle.Correlate(lifecycle.Input{Node: "podlife-node", Now: time.Now(), Pods: ks.Pods, Kubelet: ks.Health,
				Sandboxes: rs.Sandboxes, Containers: rs.Containers, Runtime: rs.Health})
			var bad []string
			for _, v := range snap.Pods {
				name := strings.TrimSuffix(v.Name, "-podlife-node")
				if v.Stage != want[name] {
					bad = append(bad, fmt.Sprintf("%s: %s (%s)", name, v.Stage, v.StageReason))
				}
				if name == "serving" && len(v.Mismatches) > 0 {
					bad = append(bad, fmt.Sprintf("serving mismatches %+v", v.Mismatches))
				}
			}
			if len(bad) == 0 && len(snap.Pods) == 5 {
				for _, v := range snap.Pods {
					t.Logf("%-28s %-12s %s", v.Name, v.Stage, v.StageReason)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("stages: %s", strings.Join(bad, "; "))
			}
			time.Sleep(500 * time.Millisecond)
		}
	})

	// Kubernetes 1.37: the kubelet's Pods API (gate PodsAPI, beta and on by
	// default) on <root-dir>/pods-api/pods-api.sock. The source follows its
	// watch: the same pods as /pods (static pods: both views are the
	// kubelet's live status), then a pod added later as it starts and exits.
	t.Run("the Pods API: the same pods as /pods, then every change", func(t *testing.T) {
		sock := filepath.Join(k.Dir, "root", "pods-api", "pods-api.sock")
		s := startSource(t, Config{URL: "http://127.0.0.1:1", PodsAPISocket: sock, LinkInterval: -1})
		st := waitFor(t, s, "the Pods API's initial list", func(st State) bool { return st.Health.Mode == ModePodsAPI && len(st.Pods) == 5 })
		polled, err := Decode(getPods(t, k.ReadOnlyURL))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range polled {
			var got *lifecycle.Pod
			for i := range st.Pods {
				if st.Pods[i].UID == want.UID {
					got = st.Pods[i]
				}
			}
			if got == nil || got.Name != want.Name || got.Namespace != want.Namespace || got.StatusFrom != lifecycle.FromKubelet ||
				len(got.Containers) != len(want.Containers) || !got.Created.Equal(want.Created) {
				t.Fatalf("pod %s: Pods API %+v\n/pods %+v", want.Name, got, want)
			}
			if want.Name != "crashloop-podlife-node" && want.Name != "ghost-podlife-node" && got.Phase != want.Phase {
				t.Errorf("pod %s: phase %s on the Pods API, %s on /pods", want.Name, got.Phase, want.Phase)
			}
		}
		k.AddStaticPod(t, "late", `apiVersion: v1
kind: Pod
metadata: {name: late, namespace: real}
spec:
  hostNetwork: true
  restartPolicy: Never
  containers:
  - {name: job, image: `+testenv.BusyboxImage+`, imagePullPolicy: Never, command: [sh, -c, "sleep 1; exit 3"]}`)
		seen := map[string]bool{}
		waitFor(t, s, "the late pod through to its exit", func(st State) bool {
			for _, p := range st.Pods {
				if p.Name == "late-podlife-node" && len(p.Containers) == 1 {
					c := p.Containers[0]
					seen[string(c.State.Kind)] = true
					return c.State.Kind == lifecycle.StateTerminated && c.State.ExitCode == 3 && p.Phase == lifecycle.PhaseFailed
				}
			}
			return false
		})
		t.Logf("late pod states seen on the watch: %v", seen)
		if st := s.State(); !st.Health.Up || st.Health.LastError != "" {
			t.Fatalf("health %+v", st.Health)
		}
	})

	t.Run("RestartAllContainers: the whole pod restarted in place, read as the kubelet does", func(t *testing.T) {
		checkRestartAll(t, k, rt)
	})
}

func sameState(g lifecycle.ContainerState, s corev1.ContainerState) bool {
	switch {
	case s.Terminated != nil:
		x := s.Terminated
		return g.Kind == lifecycle.StateTerminated && g.ExitCode == x.ExitCode && g.Reason == x.Reason &&
			g.StartedAt.Equal(x.StartedAt.Time) && g.FinishedAt.Equal(x.FinishedAt.Time) && g.ContainerID == x.ContainerID
	case s.Running != nil:
		return g.Kind == lifecycle.StateRunning && g.StartedAt.Equal(s.Running.StartedAt.Time)
	case s.Waiting != nil:
		return g.Kind == lifecycle.StateWaiting && g.Reason == s.Waiting.Reason && g.Message == s.Waiting.Message
	}
	return g.Kind == lifecycle.StateNone
}

func lastN(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func yamlUnmarshal(b []byte, v any) error { return sigyaml.Unmarshal(b, v) }

func writeToken(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "token")
	os.WriteFile(p, []byte("any-token"), 0o600)
	return p
}

func writeCA(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "ca.crt")
	os.WriteFile(p, pemOf(selfSigned(t)), 0o644)
	return p
}
