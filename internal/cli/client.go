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
	"slices"
	"strings"
	"time"

	"github.com/podlife/podlife/api"
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

// bearer adds a bearer token to every request.
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

// Pods fetches the node's pods. An answer with a null pod is refused.
func (c *Client) Pods(ctx context.Context) (*api.PodsResponse, error) {
	var r api.PodsResponse
	if err := c.get(ctx, "/api/v1/pods", &r); err != nil {
		return &r, err
	}
	if i := slices.Index(r.Pods, nil); i >= 0 {
		return &r, fmt.Errorf("GET /api/v1/pods: pod %d of %d is null", i, len(r.Pods))
	}
	return &r, nil
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
