package cli

import (
	"bytes"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podlife/podlife/api"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/lifecycle"
)

func TestPrintPods(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ec, zero := int32(137), int32(0)
	r := &api.PodsResponse{Node: "n", Sources: map[string]lifecycle.SourceHealth{
		"kubelet": {Configured: true, Up: false, LastError: "connection refused"}, "runtime": {Configured: true, Up: true}},
		Pods: []*lifecycle.PodView{
			{Namespace: "shop", Name: "web", Stage: lifecycle.StageServing, StageReason: "Serving: 2/2 containers ready",
				Created: now.Add(-90 * time.Minute), Containers: []lifecycle.ContainerView{
					{Name: "a", Kind: lifecycle.KindRegular, Ready: true, RestartCount: 2},
					{Name: "b", Kind: lifecycle.KindSidecar, Ready: true, Started: true, State: lifecycle.StateRunning, RestartCount: 1},
					{Name: "i", Kind: lifecycle.KindInit, State: lifecycle.StateTerminated, ExitCode: &zero, RestartCount: 5}}},
			// kubectl printPod: while initializing, RESTARTS counts the init
			// containers up to the first one not done; no creation time is <unknown>.
			{Namespace: "shop", Name: "init", Stage: lifecycle.StageInitializing, StageReason: "Initializing: x",
				Containers: []lifecycle.ContainerView{
					{Name: "i", Kind: lifecycle.KindInit, State: lifecycle.StateWaiting, RestartCount: 3},
					{Name: "a", Kind: lifecycle.KindRegular, RestartCount: 7}}},
			{Namespace: "shop", Name: "worker", Stage: lifecycle.StageUnknown, UnknownCause: lifecycle.CauseKubeletUnreachable,
				StageReason: "Unknown: kubelet unreachable (connection refused); runtime: 0/1 containers running",
				Created:     now.Add(-3 * 24 * time.Hour), Containers: []lifecycle.ContainerView{
					{Name: "w", Kind: lifecycle.KindRegular, State: lifecycle.StateTerminated, ExitCode: &ec}}},
		}}
	var b bytes.Buffer
	PrintPods(&b, r, now)
	want := `NAMESPACE  NAME    STAGE         READY  RESTARTS  AGE        WHY
shop       web     Serving       2/2    3         90m        2/2 containers ready
shop       init    Initializing  0/1    3         <unknown>  x
shop       worker  Unknown       0/1    0         3d         kubelet unreachable (connection refused); runtime: 0/1 containers running
! kubelet down: connection refused
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestFormatTransition(t *testing.T) {
	ec := int32(137)
	got := FormatTransition(api.Record{Seq: 1, Transition: lifecycle.Transition{Kind: lifecycle.TransitionContainerRestarted,
		Namespace: "shop", Pod: "web", Container: "app", Source: "kubelet", From: "1", To: "2", ExitCode: &ec,
		Detail: "restart 2, last exit 137 OOMKilled"}})
	if want := "ContainerRestarted shop/web app [kubelet] 1 -> 2 exit 137: restart 2, last exit 137 OOMKilled"; got != want {
		t.Fatalf("%q", got)
	}
	if Age(0) != "<unknown>" || Age(90*time.Second) != "90s" || Age(5*time.Hour) != "5h" {
		t.Fatal("age")
	}
	var b bytes.Buffer
	if err := Output(&b, "yaml", map[string]int{"a": 1}); err != nil || strings.TrimSpace(b.String()) != "a: 1" {
		t.Fatalf("yaml %q %v", b.String(), err)
	}
	if err := Output(&b, "xml", 1); err == nil {
		t.Fatal("xml accepted")
	}
}

// The client reaches a secured agent: the token only over https, the
// agent's certificate verified with a CA file or not at all, and 401/403
// explained.
func TestSecuredClient(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			if r.URL.Path == "/api/v1/transitions" { // a watch: one record, then the end
				w.Write([]byte(`{"seq":7,"kind":"ContainerStarted"}` + "\n"))
				return
			}
			w.Write([]byte(`{"node":"n1","pods":[]}`))
		case "":
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"Unauthorized: send a bearer token"}`))
		default:
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":"Forbidden: user \"x\" cannot get nodes/podlife \"n1\""}`))
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile, empty := filepath.Join(dir, "token"), filepath.Join(dir, "empty")
	os.WriteFile(tokenFile, []byte("good\n"), 0o600)
	os.WriteFile(empty, nil, 0o600)
	tests := []struct {
		name   string
		server string
		auth   Auth
		want   string // the error; "" for the pods
	}{
		{"token, CA", srv.URL, Auth{Token: "good", CertificateAuthority: ca}, ""},
		{"token file, no verification", srv.URL, Auth{TokenFile: tokenFile, InsecureSkipTLSVerify: true}, ""},
		{"no token", srv.URL, Auth{CertificateAuthority: ca}, "Unauthorized: send a bearer token (give --token or --token-file)"},
		{"no token, watch", srv.URL + "/watch", Auth{CertificateAuthority: ca}, "Unauthorized: send a bearer token (give --token or --token-file)"},
		{"no role", srv.URL, Auth{Token: "other", CertificateAuthority: ca}, `Forbidden: user "x" cannot get nodes/podlife "n1"`},
		{"unverified certificate", srv.URL, Auth{Token: "good"}, "the agent's certificate is self-signed unless it was given one: " +
			"--certificate-authority FILE, or --insecure-skip-tls-verify)"},
		{"token over http", "http://127.0.0.1:9808", Auth{Token: "good"},
			"a token for http://127.0.0.1:9808: it would travel in clear; the agent's secure address is https://"},
		{"both tokens", srv.URL, Auth{Token: "good", TokenFile: tokenFile}, "--token and --token-file: give one"},
		{"empty token file", srv.URL, Auth{TokenFile: empty}, "--token-file " + empty + ": empty"},
		{"CA and no verification", srv.URL, Auth{CertificateAuthority: ca, InsecureSkipTLSVerify: true},
			"--certificate-authority and --insecure-skip-tls-verify: give one"},
		{"CA not PEM", srv.URL, Auth{CertificateAuthority: tokenFile}, "--certificate-authority " + tokenFile + ": no PEM certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			server, watch := strings.CutSuffix(tc.server, "/watch")
			c, err := NewClientWith(server, tc.auth)
			var pods *api.PodsResponse
			switch {
			case err == nil && watch:
				err = c.Watch(context.Background(), func(api.Record) error { return nil })
			case err == nil:
				pods, err = c.Pods(context.Background())
			}
			if tc.want == "" && err == nil { // the watch goes with the same credentials
				var seqs []uint64
				werr := c.Watch(context.Background(), func(r api.Record) error { seqs = append(seqs, r.Seq); return nil })
				// The fake agent ends the stream after one record: said, not a silent exit.
				if len(seqs) != 1 || seqs[0] != 7 || werr == nil || !strings.Contains(werr.Error(), "ended the watch (stopped or replaced)") {
					t.Fatalf("watch: %v %v", werr, seqs)
				}
			}
			switch {
			case tc.want == "" && (err != nil || pods.Node != "n1"):
				t.Fatalf("%v %+v", err, pods)
			case tc.want != "" && (err == nil || !strings.HasSuffix(err.Error(), tc.want)):
				t.Fatalf("%v, want …%s", err, tc.want)
			}
		})
	}
}

func TestPrintJournal(t *testing.T) {
	at := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	stats := journal.Stats{Pending: 1, LastSeq: 9, Delivered: 8}
	pending := []journal.Entry{{Seq: 9, Transition: lifecycle.Transition{Kind: lifecycle.TransitionContainerRestarted,
		Namespace: "ns", Pod: "p", Container: "c", Source: "runtime", From: "0", To: "1", ObservedAt: at}}}
	line := "  #9 2026-11-26T04:00:00Z  " + FormatTransition(api.Record{Seq: 9, Transition: pending[0].Transition}) + "\n"
	tests := []struct {
		name       string
		r          api.JournalResponse
		withHealth bool
		want       string
	}{
		{"a file read directly", api.JournalResponse{Stats: stats, Pending: pending}, false,
			"journal /j.db: 1 pending, last seq 9, delivered up to 8, dropped 0\n" + line},
		{"an agent's, up", api.JournalResponse{Stats: stats, Pending: pending, Health: api.JournalHealth{Up: true}}, true,
			"journal /j.db: 1 pending, last seq 9, delivered up to 8, dropped 0\nhealth: up; 0 held in memory, 0 lost, 0 errors\n" + line},
		{"an agent's, down", api.JournalResponse{Stats: stats, Health: api.JournalHealth{DownSince: at, Unwritten: 12, Lost: 3, Errors: 2,
			Error: "write /var/lib/podlife/journal.db: no space left on device", ErrorAt: at.Add(time.Second),
			MovedAside: []api.MovedAside{{Path: "/j.db.corrupt-x", Reason: "invalid database", At: at}}}}, true,
			"journal /j.db: 1 pending, last seq 9, delivered up to 8, dropped 0\n" +
				"health: DOWN since 2026-11-26T04:00:00Z; 12 held in memory, 3 lost, 2 errors; last error at 2026-11-26T04:00:01Z: write /var/lib/podlife/journal.db: no space left on device\n" +
				"moved aside at 2026-11-26T04:00:00Z: /j.db.corrupt-x (invalid database)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			PrintJournal(&b, "/j.db", &tc.r, tc.withHealth)
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}
