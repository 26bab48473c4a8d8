package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podlife/podlife/internal/secure"
)

// Remote says how to reach a node's agent from anywhere with cluster access:
// through the API server's pod proxy to the agent pod on Node.
type Remote struct {
	Kubeconfig string // default: $KUBECONFIG, then ~/.kube/config
	Context    string // default: the current context
	Node       string
	Namespace  string // the agent's namespace (deploy/: podlife)
	Selector   string // the agent pods' labels (deploy/: app.kubernetes.io/name=podlife)
	Port       string // the agent container's port name (deploy/: https)
	// Viewer is the ServiceAccount (in Namespace) for which a short-lived
	// token is requested, when the caller gives no token of its own
	// (deploy/cli-rbac.yaml: podlife-viewer, bound to podlife-reader).
	Viewer string
	// TokenTTL is the requested token's lifetime (the API server's minimum is 10m).
	TokenTTL time.Duration
}

// RemoteDefaults are deploy/'s names.
var RemoteDefaults = Remote{Namespace: "podlife", Selector: "app.kubernetes.io/name=podlife", Port: "https",
	Viewer: "podlife-viewer", TokenTTL: 10 * time.Minute}

// NewRemoteClient finds the agent pod on r.Node and returns a client that
// reaches it through the API server's pod proxy
// (/api/v1/namespaces/NS/pods/https:POD:PORT/proxy), with the kubeconfig's
// credentials for the API server and, for the agent, auth's token or else a
// token of r.Viewer requested for the purpose (TokenRequest, audience
// secure.ProxyAudience, r.TokenTTL). The API server removes the Authorization
// header before proxying, so the agent's token travels in
// secure.ProxyAuthorizationHeader. Credentials come from the kubeconfig as
// kubectl's do (token, client certificate, exec plugin), except the legacy
// auth-provider plugins, which this binary does not carry.
//
// The caller needs, in r.Namespace: list pods, get pods/proxy, and (without a
// token of its own) create serviceaccounts/token on r.Viewer; Role
// podlife-cli in deploy/cli-rbac.yaml grants exactly that.
func NewRemoteClient(ctx context.Context, r Remote, auth Auth) (*Client, error) {
	if r.Node == "" {
		return nil, errors.New("--node: which node's agent")
	}
	api, err := newAPIServer(r)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute) // room for an interactive login
	defer cancel()
	pod, port, err := api.agentPod(ctx, r)
	if err != nil {
		return nil, err
	}
	token, err := auth.token()
	if err != nil {
		return nil, err
	}
	rt := &proxiedBearer{token: token, next: api.http.Transport}
	if token != "" {
		if err := forAgent(token); err != nil {
			return nil, err
		}
	} else {
		// The viewer's token is short-lived: renewed before it expires, so
		// that a long watch or `podlife ui` goes on.
		rt.renew = func(ctx context.Context) (string, error) { return api.viewerToken(ctx, r) }
		rt.every = r.TokenTTL * 3 / 4
		if err := rt.refresh(ctx); err != nil {
			return nil, err
		}
	}
	where := fmt.Sprintf("%s/api/v1/namespaces/%s/pods/https:%s:%d/proxy", api.host, url.PathEscape(r.Namespace), url.PathEscape(pod), port)
	return &Client{Server: where, HTTP: &http.Client{Timeout: 10 * time.Second, Transport: rt}, Stream: &http.Client{Transport: rt}}, nil
}

// newAPIServer is the API server of r's kubeconfig, with its credentials as
// kubectl's (token, client certificate, exec plugin). No client timeout: an
// exec credential plugin (kubelogin) may wait for an interactive login
// inside the first call.
func newAPIServer(r Remote) (apiServer, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = r.Kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: r.Context}).ClientConfig()
	if err != nil {
		return apiServer{}, fmt.Errorf("kubeconfig: %w", err)
	}
	rc.UserAgent = "kubectl-podlife"
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return apiServer{}, fmt.Errorf("kubeconfig %s: %w", rc.Host, err)
	}
	return apiServer{host: strings.TrimSuffix(rc.Host, "/"), http: &http.Client{Transport: hc.Transport}}, nil
}

// forAgent refuses a token given with --node unless it is a JWT made for
// the agent (audience secure.ProxyAudience): through the pod proxy it goes to
// a node, where an API server credential must never go. (The agent would
// refuse it anyway; this keeps it from being sent.) The token's signature is
// the API server's to check, not the CLI's.
func forAgent(token string) error {
	const fix = "; with --node the token goes to the node's agent and must be made for it: " +
		"kubectl -n podlife create token podlife-viewer --audience " + secure.ProxyAudience + " (or give none: the CLI requests one)"
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("--token is not a JWT" + fix)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return fmt.Errorf("--token: its payload: %v%s", err, fix)
	}
	var claims struct {
		Aud json.RawMessage `json:"aud"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return fmt.Errorf("--token: its payload: %v%s", err, fix)
	}
	var auds []string
	if json.Unmarshal(claims.Aud, &auds) != nil {
		var one string
		json.Unmarshal(claims.Aud, &one)
		auds = []string{one}
	}
	for _, a := range auds {
		if a == secure.ProxyAudience {
			return nil
		}
	}
	return fmt.Errorf("--token is for audience %q%s", auds, fix)
}

// proxiedBearer sends the agent's token in the header the API server's pod
// proxy passes on; with renew, a new token every so often.
type proxiedBearer struct {
	next  http.RoundTripper
	renew func(context.Context) (string, error) // nil: the token is the caller's own
	every time.Duration

	mu      sync.Mutex
	token   string
	renewed time.Time
}

// refresh gets a new token.
func (b *proxiedBearer) refresh(ctx context.Context) error {
	token, err := b.renew(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.token, b.renewed = token, time.Now().Round(0) // the wall clock: it goes on while a laptop sleeps
	b.mu.Unlock()
	return nil
}

// RoundTrip sends req with the token, on a copy as RoundTrippers must,
// renewing the token first when it is due.
func (b *proxiedBearer) RoundTrip(req *http.Request) (*http.Response, error) {
	b.mu.Lock()
	age := time.Now().Round(0).Sub(b.renewed)
	b.mu.Unlock()
	if b.renew != nil && age > b.every {
		// A renewal that fails goes on with the token while it is valid
		// (every is three quarters of its lifetime).
		if err := b.refresh(req.Context()); err != nil && age > b.every*4/3 {
			return nil, err
		}
	}
	b.mu.Lock()
	token := b.token
	b.mu.Unlock()
	req = req.Clone(req.Context())
	req.Header.Set(secure.ProxyAuthorizationHeader, "Bearer "+token)
	return b.next.RoundTrip(req)
}

// apiServer makes the CLI's two API calls as plain JSON requests (no
// client-go scheme in the podlife binary).
type apiServer struct {
	host string
	http *http.Client
}

// agentPod is the Running agent pod on r.Node (the newest, if a rolling
// update leaves two) and its API port.
func (a apiServer) agentPod(ctx context.Context, r Remote) (string, int, error) {
	q := url.Values{"labelSelector": {r.Selector}, "fieldSelector": {"spec.nodeName=" + r.Node}}
	var l corev1.PodList
	if err := a.do(ctx, http.MethodGet, "/api/v1/namespaces/"+url.PathEscape(r.Namespace)+"/pods?"+q.Encode(), nil, &l); err != nil {
		return "", 0, fmt.Errorf("finding the agent pod on node %s: %w", r.Node, err)
	}
	if len(l.Items) == 0 {
		return "", 0, fmt.Errorf("no podlife agent on node %q: no pod in namespace %s with labels %s there (is the node name right? else see --agent-namespace, --agent-selector)",
			r.Node, r.Namespace, r.Selector)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[j].CreationTimestamp.Before(&l.Items[i].CreationTimestamp) })
	var states []string
	for _, p := range l.Items {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			states = append(states, fmt.Sprintf("%s is %s", p.Name, p.Status.Phase))
			continue
		}
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == r.Port {
					return p.Name, int(cp.ContainerPort), nil
				}
			}
		}
		states = append(states, fmt.Sprintf("%s has no container port named %q", p.Name, r.Port))
	}
	return "", 0, fmt.Errorf("no running podlife agent on node %s: %s", r.Node, strings.Join(states, "; "))
}

// viewerToken requests a short-lived token of r.Viewer.
func (a apiServer) viewerToken(ctx context.Context, r Remote) (string, error) {
	ttl := int64(r.TokenTTL / time.Second)
	req := authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl,
		Audiences: []string{secure.ProxyAudience}}}
	req.APIVersion, req.Kind = "authentication.k8s.io/v1", "TokenRequest"
	var resp authenticationv1.TokenRequest
	path := "/api/v1/namespaces/" + url.PathEscape(r.Namespace) + "/serviceaccounts/" + url.PathEscape(r.Viewer) + "/token"
	if err := a.do(ctx, http.MethodPost, path, req, &resp); err != nil {
		return "", fmt.Errorf("a token for the agent (TokenRequest for ServiceAccount %s/%s; or give --token / --token-file): %w",
			r.Namespace, r.Viewer, err)
	}
	if resp.Status.Token == "" {
		return "", fmt.Errorf("a token for the agent: the TokenRequest for %s/%s came back empty", r.Namespace, r.Viewer)
	}
	return resp.Status.Token, nil
}

// do sends a JSON request and decodes the answer into out; an error answer
// is the API server's message.
func (a apiServer) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.host+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the API server's answer: %w", err)
	}
	return nil
}

// apiError is the message of an API server's Status answer.
func apiError(code int, body []byte) error {
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		return fmt.Errorf("API server: %s", st.Message)
	}
	return fmt.Errorf("API server: HTTP %d: %s", code, strconv.QuoteToASCII(string(bytes.TrimSpace(body[:min(len(body), 300)]))))
}
