package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/internal/upstream"
	"github.com/podlife/podlife/lifecycle"
)

func (a *faultAgent) checkDelivered(admin kubernetes.Interface, before mark, source string) {
	a.t.Helper()
	testenv.Eventually(a.t, "the whole journal delivered", 120*time.Second, func() bool {
		j := a.journal()
		return j.Stats.LastSeq > 0 && j.Stats.Delivered == j.Stats.LastSeq
	})
	j, hist := a.journal(), a.history()
	if j.Stats.Dropped != 0 || !j.Health.Up {
		a.t.Errorf("journal: dropped %d, up %v (%s)", j.Stats.Dropped, j.Health.Up, j.Health.Error)
	}
	if uint64(len(hist)) != j.Stats.LastSeq {
		a.t.Fatalf("%d transitions recorded, %d journaled: want the same", len(hist), j.Stats.LastSeq)
	}
	for i, r := range before.history {
		if i >= len(hist) || hist[i].Seq != r.Seq || !sameTransition(hist[i].Transition, r.Transition) {
			a.t.Errorf("recorded before the fault, lost or changed: seq %d %s", r.Seq, describe(r.Transition))
		}
	}
	l, err := admin.EventsV1().Events("").List(context.Background(), metav1.ListOptions{LabelSelector: "podlife.dev/seq"})
	if err != nil {
		a.t.Fatal(err)
	}
	events := map[string]int{}
	for _, e := range l.Items {
		for _, q := range eventSeqs(a.t, e) {
			events[q]++
		}
	}
	var downs, ups, reported int
	for _, r := range hist {
		n, want := events[fmt.Sprint(r.Seq)], 0
		if upstream.Reportable(r.Transition) {
			want = 1
			reported++
		}
		if n != want {
			a.t.Errorf("seq %d %s: %d Events, want %d", r.Seq, describe(r.Transition), n, want)
		}
		if r.Seq > uint64(len(before.history)) && r.Source == source {
			switch r.Kind {
			case lifecycle.TransitionSourceDown:
				downs++
			case lifecycle.TransitionSourceUp:
				ups++
			}
		}
	}
	if downs != 1 || ups != 1 {
		a.t.Errorf("since the fault: %d SourceDown and %d SourceUp of %s, want 1 and 1", downs, ups, source)
	}
	a.t.Logf("%d transitions journaled, %d delivered as one Event each", len(hist), reported)
}

// TestAPIServerFaults: the API server rows of the fault table, in the
// one-node cluster, with the agent reporting upstream through a link of its
// own. The API server runs without its watch cache and compacts etcd every
// 2 s: a watch the agent resumes after a few seconds' partition then meets
// 410 Gone from etcd, as it would after a partition longer than the default
// 5-minute compaction. (With the watch cache, a watch resumed within its
// window of about 75 s is served from memory and never sees 410.)
func TestAPIServerFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (a one-node cluster): not in -short")
	}
	bin := buildPodlife(t)
	c := testenv.StartCluster(t, testenv.ClusterOptions{APIServerArgs: []string{"--watch-cache=false", "--etcd-compaction-interval=2s"}})
	admin, ctx := c.Client(t), context.Background()
	if err := testenv.ApplyRBAC(ctx, admin, testenv.AgentUser); err != nil {
		t.Fatal(err)
	}
	const ns = "faults"
	c.CreateNamespace(t, ns)
	// The agent reads the kubelet with a service-account token of its own
	// user, so that revoking its static token leaves the kubelet's reviews
	// of the other alone.
	if _, err := admin.CoreV1().ServiceAccounts("kube-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "podlife"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, "podlife", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeletToken := filepath.Join(t.TempDir(), "token")
	writeFile(t, kubeletToken, tr.Status.Token)
	link := c.NewLink(t)
	ag := startFaultAgent(t, bin, "--node-name", c.NodeName, "--cri-endpoint", c.Containerd.Endpoint,
		"--kubelet-url", c.KubeletURL, "--kubelet-token-file", kubeletToken,
		"--kubelet-ca-file", c.API.CAFile, "--kubelet-serving-cert-file", c.KubeletServingCertFile,
		"--upstream", "on", "--kubeconfig", link.Kubeconfig(t, testenv.AgentToken), "--event-burst", "1000",
		"--apiserver-probe-interval", "2s", "--delivery-jitter", "0")
	createPod := func(name string, command ...string) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{HostNetwork: true,
			Containers: []corev1.Container{{Name: "app", Image: testenv.BusyboxImage, ImagePullPolicy: corev1.PullNever, Command: command}}}}
		if _, err := admin.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// seen reports whether the agent shows the pod, and whether with the
	// API server's copy of it (its watch of the pods bound to the node).
	seen := func(name string) (shown, withAPIServer bool) {
		r, _ := ag.pods()
		for _, p := range r.Pods {
			if p.Namespace == ns && p.Name == name {
				return true, p.APIServer != nil
			}
		}
		return false, false
	}
	createPod("serving", "sleep", "3600")
	createPod("crashloop", "sh", "-c", "sleep 1; exit 7")
	testenv.Eventually(t, "the pods shown with the API server's copy", 120*time.Second, func() bool {
		_, a := seen("serving")
		_, b := seen("crashloop")
		return a && b
	})
	testenv.Eventually(t, "Events delivered", 60*time.Second, func() bool { return ag.journal().Stats.Delivered > 0 })
	selector := "spec.nodeName=" + c.NodeName

	t.Run("watch 410 Gone: the agent relists", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		link.Cut()
		// Nothing after this version reaches the agent: its watches resume
		// from it or earlier.
		l, err := admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		cutAt := l.ResourceVersion
		ag.waitDown(lifecycle.SourceAPIServer, 30*time.Second, "apiserver: ")
		createPod("born-in-cut", "sleep", "3600")
		testenv.Eventually(t, "the new pod shown from the kubelet and runtime alone", 90*time.Second, func() bool {
			shown, api := seen("born-in-cut")
			return shown && !api
		})
		testenv.Eventually(t, "etcd compacted past the partition: a watch from "+cutAt+" answers 410", 60*time.Second, func() bool {
			return watchExpired(admin, selector, cutAt)
		})
		link.Heal()
		ag.waitUp(lifecycle.SourceAPIServer, 60*time.Second)
		testenv.Eventually(t, "the new pod's API server copy, from the relist", 60*time.Second, func() bool {
			_, api := seen("born-in-cut")
			return api
		})
		ag.checkDelivered(admin, before, lifecycle.SourceAPIServer)
	})
	t.Run("serving certificate renewed, same CA: the agent reconnects", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		old := servedSerial(t, c.API)
		c.API.Stop()
		ag.waitDown(lifecycle.SourceAPIServer, 30*time.Second, "apiserver: ")
		serial := c.API.RenewServingCert(t)
		c.API.Start()
		if got := servedSerial(t, c.API); got != serial || got == old {
			t.Fatalf("the API server serves certificate serial %s, want the new %s (was %s)", got, serial, old)
		}
		ag.waitUp(lifecycle.SourceAPIServer, 60*time.Second)
		ag.checkDelivered(admin, before, lifecycle.SourceAPIServer)
	})
	t.Run("the agent's token revoked, then restored", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		delivered := ag.journal().Stats.Delivered
		c.API.Stop()
		c.API.SetTokenAccepted(t, testenv.AgentToken, false)
		c.API.Start()
		ag.waitDown(lifecycle.SourceAPIServer, 60*time.Second, "apiserver: 401 Unauthorized: the API server does not accept podlife's credentials")
		// A pod that crashes now: its transitions wait in the journal.
		createPod("crash-while-revoked", "sh", "-c", "sleep 1; exit 9")
		testenv.Eventually(t, "the new pod's crash journaled, not delivered", 90*time.Second, func() bool {
			for _, e := range ag.journal().Pending {
				if e.Seq > delivered && e.Transition.Pod == "crash-while-revoked" && upstream.Reportable(e.Transition) {
					return true
				}
			}
			return false
		})
		c.API.Stop()
		c.API.SetTokenAccepted(t, testenv.AgentToken, true)
		c.API.Start()
		ag.waitUp(lifecycle.SourceAPIServer, 60*time.Second)
		ag.checkDelivered(admin, before, lifecycle.SourceAPIServer)
	})
}

// watchExpired reports whether a watch of the pods matching selector from
// resourceVersion is refused as expired (410 Gone).
func watchExpired(admin kubernetes.Interface, selector, resourceVersion string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	w, err := admin.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{FieldSelector: selector, ResourceVersion: resourceVersion})
	if err != nil {
		return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
	}
	defer w.Stop()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false
			}
			if ev.Type == watch.Error {
				err := apierrors.FromObject(ev.Object)
				return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
			}
		case <-ctx.Done():
			return false
		}
	}
}

// servedSerial is the serial number of the certificate the API server
// presents, verified with its CA.
func servedSerial(t *testing.T, api *testenv.APIServer) string {
	t.Helper()
	ca, err := os.ReadFile(api.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(api.URL, "https://"), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("the API server's certificate: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}
