// Package cli is podlife's node-level debugging CLI: it reads a running
// agent's HTTP API (or, with --direct, the sources themselves) and prints a
// kubectl-like table, a describe view, or live transitions.
package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/podlife/podlife/api"
	"github.com/podlife/podlife/lifecycle"
)

// Client talks to an agent.
type Client struct {
	Server string
	// HTTP makes requests with a timeout; Stream (no timeout) follows watches.
	HTTP, Stream *http.Client
}

// Auth says how to reach an agent's secure address (https://): the bearer
// token the agent has the API server review, and how to verify the agent's
// serving certificate (by default: the system's roots).
type Auth struct {
	Token, TokenFile      string // a token, or a file holding one
	CertificateAuthority  string // PEM file of the CA that signed the agent's certificate
	InsecureSkipTLSVerify bool   // do not verify the agent's certificate (its default one is self-signed)
}

// NewClient is a client with a request timeout and no credentials.
func NewClient(server string) *Client {
	c, _ := NewClientWith(server, Auth{}) // cannot fail without credentials
	return c
}

// NewClientWith is a client for server with the credentials and TLS
// verification of auth. A token is only sent over https.
func NewClientWith(server string, auth Auth) (*Client, error) {
	server = strings.TrimSuffix(server, "/")
	token, err := auth.token()
	if err != nil {
		return nil, err
	}
	if token != "" && !strings.HasPrefix(server, "https://") {
		return nil, fmt.Errorf("a token for %s: it would travel in clear; the agent's secure address is https://", server)
	}
	tlsConfig := &tls.Config{InsecureSkipVerify: auth.InsecureSkipTLSVerify}
	if auth.CertificateAuthority != "" {
		if auth.InsecureSkipTLSVerify {
			return nil, fmt.Errorf("--certificate-authority and --insecure-skip-tls-verify: give one")
		}
		b, err := os.ReadFile(auth.CertificateAuthority)
		if err != nil {
			return nil, fmt.Errorf("--certificate-authority: %w", err)
		}
		tlsConfig.RootCAs = x509.NewCertPool()
		if !tlsConfig.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--certificate-authority %s: no PEM certificate", auth.CertificateAuthority)
		}
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = tlsConfig
	var rt http.RoundTripper = base
	if token != "" {
		rt = bearer{token: token, next: base}
	}
	return &Client{Server: server, HTTP: &http.Client{Timeout: 10 * time.Second, Transport: rt},
		Stream: &http.Client{Transport: rt}}, nil
}

// bearer adds a bearer token to every request.
// token is the token given, or read from the file given; "" if none.
func (a Auth) token() (string, error) {
	if a.TokenFile == "" {
		return a.Token, nil
	}
	if a.Token != "" {
		return "", fmt.Errorf("--token and --token-file: give one")
	}
	b, err := os.ReadFile(a.TokenFile)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("--token-file %s: empty", a.TokenFile)
	}
	return token, nil
}

type bearer struct {
	token string
	next  http.RoundTripper
}

// RoundTrip sends r with the token, on a copy as RoundTrippers must.
func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the podlife agent at %s (is it running? try --direct): %w%s", c.Server, err, tlsHint(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return httpError(resp, path)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return json.Unmarshal(body, v)
}

// tlsHint says what to do about an agent certificate that did not verify.
func tlsHint(err error) string {
	var v *tls.CertificateVerificationError
	if errors.As(err, &v) {
		return " (the agent's certificate is self-signed unless it was given one: --certificate-authority FILE, or --insecure-skip-tls-verify)"
	}
	return ""
}

// httpError is the error of an answer other than 200: the agent's
// {"error": ...} where it sent one, with a hint for 401 and 403.
func httpError(resp *http.Response, path string) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := fmt.Sprintf("GET %s: HTTP %d", path, resp.StatusCode)
	// The agent answers {"error": ...}; the API server (its pod proxy), a
	// Status with a message.
	var e struct{ Error, Message, Kind string }
	switch {
	case json.Unmarshal(body, &e) != nil:
	case e.Error != "":
		msg = e.Error
	case e.Kind == "Status" && e.Message != "":
		msg = "API server: " + e.Message
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if !strings.Contains(msg, "for audience") { // the pod proxy's: it says what to give
			msg += " (give --token or --token-file)"
		}
	}
	return errors.New(msg)
}

// Pods fetches the node's pods.
func (c *Client) Pods(ctx context.Context) (*api.PodsResponse, error) {
	var r api.PodsResponse
	return &r, c.get(ctx, "/api/v1/pods", &r)
}

// Pod fetches one pod and its history.
func (c *Client) Pod(ctx context.Context, ns, name string) (*api.PodResponse, error) {
	var r api.PodResponse
	return &r, c.get(ctx, "/api/v1/pods/"+url.PathEscape(ns)+"/"+url.PathEscape(name), &r)
}

// Journal fetches the agent's undelivered journal entries.
func (c *Client) Journal(ctx context.Context, r *api.JournalResponse) error {
	return c.get(ctx, "/api/v1/journal", r)
}

// Watch streams transitions to fn until ctx is done.
func (c *Client) Watch(ctx context.Context, fn func(api.Record) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+"/api/v1/transitions?watch=true", nil)
	if err != nil {
		return err
	}
	resp, err := c.Stream.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the podlife agent at %s: %w%s", c.Server, err, tlsHint(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return httpError(resp, "/api/v1/transitions")
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var r api.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("bad transition from agent: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("the watch on %s broke off: %w", c.Server, err)
	}
	// The agent ended the stream: it stopped, or its pod was replaced.
	return fmt.Errorf("the podlife agent at %s ended the watch (stopped or replaced); run it again", c.Server)
}

// Output writes v as json or yaml.
func Output(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("output format %q: want json or yaml", format)
}

// Age renders a duration as kubectl's AGE column does
// (k8s.io/apimachinery/pkg/util/duration.HumanDuration).
func Age(d time.Duration) string {
	if d <= 0 {
		return "<unknown>"
	}
	return duration.HumanDuration(d)
}

// since is kubectl's translateTimestampSince: "<unknown>" for a zero time.
func since(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return Age(now.Sub(t))
}

// why is the stage reason without its "Stage: " prefix, shortened.
func why(p lifecycle.PodView) string {
	s := p.StageReason
	if i := strings.Index(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if p.UnknownCause != "" && p.Stage != lifecycle.StageUnknown {
		s = "[" + string(p.UnknownCause) + "] " + s
	}
	if len(s) > 90 {
		s = s[:89] + "…"
	}
	return s
}

// PrintPods writes the kubectl-like table.
func PrintPods(w io.Writer, r *api.PodsResponse, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tSTAGE\tREADY\tRESTARTS\tAGE\tWHY")
	for _, p := range r.Pods {
		ready, total := p.ReadyCount()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", p.Namespace, p.Name, p.Stage, ready, total, p.Restarts(),
			since(now, p.Created), why(p))
	}
	tw.Flush()
	var down []string
	names := make([]string, 0, len(r.Sources))
	for n := range r.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if h := r.Sources[n]; h.Configured && !h.Up {
			down = append(down, fmt.Sprintf("%s down: %s", n, h.LastError))
		}
	}
	for _, d := range down {
		fmt.Fprintln(w, "! "+d)
	}
}

// PrintDescribe writes one pod: conditions with reasons, each container's
// kubelet and runtime views side by side, mismatches, and its timeline.
func PrintDescribe(w io.Writer, p *api.PodResponse, now time.Time) {
	fmt.Fprintf(w, "Name:          %s\nNamespace:     %s\nUID:           %s\n", p.Name, p.Namespace, p.UID)
	fmt.Fprintf(w, "Phase:         %s (from %s)\nStage:         %s\nWhy:           %s\n", p.Phase, dash(p.StatusFrom), p.Stage, p.StageReason)
	if kc := p.KubeletCache; kc != nil {
		fmt.Fprintf(w, "Kubelet copy:  phase %s, Ready=%s, %d restarts; behind the runtime since %s\n",
			kc.Phase, dash(kc.Ready), kc.Restarts, kc.LagsSince.UTC().Format(time.RFC3339))
	}
	if p.UnknownCause != "" {
		since := ""
		if !p.UnknownSince.IsZero() {
			since = " since " + p.UnknownSince.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "Unknown cause: %s%s\n", p.UnknownCause, since)
	}
	if p.APIServer != nil {
		fmt.Fprintf(w, "API server:    phase %s, Ready=%s\n", p.APIServer.Phase, p.APIServer.Ready)
	}
	fmt.Fprintln(w, "Conditions:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tMESSAGE\tSINCE")
	for _, c := range p.Conditions {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, dash(c.Reason), dash(c.Message), since(now, c.LastTransitionTime))
	}
	tw.Flush()
	fmt.Fprintln(w, "Containers:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tKIND\tSTATE\tFROM\tRUNTIME\tRESTARTS\tREADY\tLAST TERMINATION")
	for _, c := range p.Containers {
		kub := string(c.State)
		if c.Reason != "" {
			kub += "/" + c.Reason
		}
		if c.ExitCode != nil {
			kub += fmt.Sprintf(" (exit %d)", *c.ExitCode)
		}

		rt := "-"
		if r := c.Runtime; r != nil {
			rt = fmt.Sprintf("%s #%d", r.State, r.Attempt)
			if r.State == lifecycle.RuntimeExited {
				rt += fmt.Sprintf(" (exit %d %s)", r.ExitCode, r.Reason)
			}
		}
		last := "-"
		if l := c.LastState; l != nil && l.Kind == lifecycle.StateTerminated {
			last = fmt.Sprintf("exit %d %s at %s", l.ExitCode, l.Reason, l.FinishedAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%v\t%s\n", c.Name, c.Kind, kub, dash(c.From), rt, c.RestartCount, c.Ready, last)
	}
	tw.Flush()
	if len(p.Mismatches) > 0 {
		fmt.Fprintln(w, "Mismatches:")
		for _, m := range p.Mismatches {
			fmt.Fprintf(w, "  %s %s: %s\n", m.Kind, m.Container, m.Detail)
		}
	}
	fmt.Fprintln(w, "Timeline:")
	if len(p.History) == 0 {
		fmt.Fprintln(w, "  (no transitions recorded since the agent started)")
	}
	for _, r := range p.History {
		fmt.Fprintf(w, "  %s  %s\n", r.ObservedAt.UTC().Format("15:04:05.000"), FormatTransition(r))
	}
}

// PrintJournal writes the journal's counts, with an agent's the health of
// its journal (withHealth: a file read directly has none), then the pending
// entries one per line.
func PrintJournal(w io.Writer, where string, r *api.JournalResponse, withHealth bool) {
	st := r.Stats
	fmt.Fprintf(w, "journal %s: %d pending, last seq %d, delivered up to %d, dropped %d\n",
		where, st.Pending, st.LastSeq, st.Delivered, st.Dropped)
	if h := r.Health; withHealth {
		state := "up"
		if !h.Up {
			state = "DOWN"
			if !h.DownSince.IsZero() {
				state += " since " + h.DownSince.UTC().Format(time.RFC3339)
			}
		}
		fmt.Fprintf(w, "health: %s; %d held in memory, %d lost, %d errors", state, h.Unwritten, h.Lost, h.Errors)
		if h.Error != "" {
			fmt.Fprintf(w, "; last error at %s: %s", h.ErrorAt.UTC().Format(time.RFC3339), h.Error)
		}
		fmt.Fprintln(w)
		for _, m := range h.MovedAside {
			fmt.Fprintf(w, "moved aside at %s: %s (%s)\n", m.At.UTC().Format(time.RFC3339), m.Path, m.Reason)
		}
	}
	for _, e := range r.Pending {
		fmt.Fprintf(w, "  #%d %s  %s\n", e.Seq, e.Transition.ObservedAt.UTC().Format(time.RFC3339Nano),
			FormatTransition(api.Record{Seq: e.Seq, Transition: e.Transition}))
	}
}

// FormatTransition is one transition on one line.
func FormatTransition(r api.Record) string {
	s := string(r.Kind)
	if r.Pod != "" {
		s += " " + r.Namespace + "/" + r.Pod
	}
	if r.Container != "" {
		s += " " + r.Container
	}
	if r.Source != "" {
		s += " [" + r.Source + "]"
	}
	if r.From != "" || r.To != "" {
		s += fmt.Sprintf(" %s -> %s", dash(r.From), dash(r.To))
	}
	if r.ExitCode != nil {
		s += fmt.Sprintf(" exit %d", *r.ExitCode)
	}
	if r.Detail != "" {
		s += ": " + r.Detail
	} else if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
