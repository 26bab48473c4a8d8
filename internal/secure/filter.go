// Package secure serves podlife's API over TLS to callers the API server
// vouches for: the caller's bearer token goes through a TokenReview and the
// request through a SubjectAccessReview, as a delegating API server
// (metrics-server) or kube-rbac-proxy does, with the decisions cached.
//
// It is built from k8s.io/apiserver's authentication and authorization
// pieces (the Request, Token and Authorizer interfaces, bearer-token parsing,
// the token cache) over narrow REST clients of the two review groups, rather
// than the library's webhook authenticator and authorizer: those import
// client-go's scheme of every API group, which doubles the binary and adds a
// third to the agent's resident memory (see README, "Cost and speed").
package secure

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// Subresources of the caller's node that podlife's paths are authorized as,
// kubelet style: get nodes/podlife for /api/v1/* and the page (/ui/), get nodes/metrics for
// /metrics (what a Prometheus that scrapes kubelets already holds), and get
// nodes/proxy for anything else (such as /debug/pprof/).
const (
	APISubresource     = "podlife"
	MetricsSubresource = "metrics"
	OtherSubresource   = "proxy"
)

// Attributes is the authorization request for r by u on node: a resource
// request for a subresource of the Node object named node; for a pod's crash
// black box (/api/v1/pods/NS/NAME/logs), what kubectl logs needs instead:
// get pods/log on that pod, in its namespace.
func Attributes(u user.Info, r *http.Request, node string) authorizer.AttributesRecord {
	p := path.Clean("/" + r.URL.Path)
	if ns, pod, ok := podLogsPath(p); ok {
		return authorizer.AttributesRecord{User: u, Verb: verb(r.Method), APIGroup: "", APIVersion: "v1",
			Resource: "pods", Subresource: "log", Namespace: ns, Name: pod, ResourceRequest: true, Path: r.URL.Path}
	}
	sub := OtherSubresource
	switch {
	case p == "/metrics":
		sub = MetricsSubresource
	case p == "/api/v1" || strings.HasPrefix(p, "/api/v1/") || p == "/ui" || strings.HasPrefix(p, "/ui/"):
		sub = APISubresource // the page (/ui/) shows what the API serves
	}
	return authorizer.AttributesRecord{User: u, Verb: verb(r.Method), APIGroup: "", APIVersion: "v1",
		Resource: "nodes", Subresource: sub, Name: node, ResourceRequest: true, Path: r.URL.Path}
}

// podLogsPath matches /api/v1/pods/NS/NAME/logs.
func podLogsPath(p string) (ns, pod string, ok bool) {
	rest, found := strings.CutPrefix(p, "/api/v1/pods/")
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "logs" || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// describe names what attrs asks for, for an error message.
func describe(attrs authorizer.AttributesRecord) string {
	if attrs.Namespace != "" {
		return fmt.Sprintf("%s %s/%s %q in namespace %q", attrs.Verb, attrs.Resource, attrs.Subresource, attrs.Name, attrs.Namespace)
	}
	return fmt.Sprintf("%s %s/%s %q", attrs.Verb, attrs.Resource, attrs.Subresource, attrs.Name)
}

// grantedBy names the role that grants attrs in podlife's manifests.
func grantedBy(attrs authorizer.AttributesRecord) string {
	if attrs.Resource == "pods" {
		return "what kubectl logs needs: the view, edit and admin ClusterRoles grant it in a namespace"
	}
	return "ClusterRole podlife-reader grants it"
}

// verb is the API verb of an HTTP method, as the kubelet maps them.
func verb(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return "get"
}

// ProxyAuthorizationHeader carries a "Bearer TOKEN" where the Authorization
// header cannot: through the API server's pod proxy
// (/api/v1/namespaces/NS/pods/https:POD:PORT/proxy/...), which authenticates
// the caller itself and removes Authorization before proxying. The token must
// be one made for ProxyAudience (its TokenReview asks for that audience), so
// that no API server credential is ever sent this way; then it gets the same
// SubjectAccessReview. Authorization wins where both are sent. kubectl
// podlife --node sends it.
const ProxyAuthorizationHeader = "X-Podlife-Authorization"

// ProxyAudience is the audience a ProxyAuthorizationHeader token is made
// for (TokenRequest spec.audiences, kubectl create token --audience).
const ProxyAudience = "podlife"

// OpenPaths are served without authentication: the probes.
var OpenPaths = map[string]bool{"/healthz": true, "/readyz": true}

// Filter serves next to callers authn authenticates and authz allows for
// node; OpenPaths go through untouched. It answers 401 to a request without
// a token the API server accepts, 403 to one it does not allow, and 500 when
// the API server could not be asked about the request; each with a JSON body
// {"error": ...}, like the rest of the API. A token may come in
// ProxyAuthorizationHeader instead of Authorization. Neither header is passed
// on.
func Filter(next http.Handler, authn authenticator.Request, authz authorizer.Authorizer, node string, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied := r.Header.Get(ProxyAuthorizationHeader)
		r.Header.Del(ProxyAuthorizationHeader)
		if OpenPaths[r.URL.Path] {
			r.Header.Del("Authorization")
			next.ServeHTTP(w, r)
			return
		}
		viaProxy := r.Header.Get("Authorization") == "" && proxied != ""
		if viaProxy {
			r.Header.Set("Authorization", proxied)
			r = r.WithContext(authenticator.WithAudiences(r.Context(), authenticator.Audiences{ProxyAudience}))
		}
		resp, ok, err := authn.AuthenticateRequest(r)
		r.Header.Del("Authorization")
		if re := (*reviewError)(nil); errors.As(err, &re) {
			log.Warn("API request not authenticated: the token could not be reviewed", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
			writeError(w, http.StatusUnauthorized, "Unauthorized: the bearer token could not be reviewed by the API server")
			return
		}
		if (err != nil || !ok) && viaProxy {
			writeError(w, http.StatusUnauthorized, "Unauthorized: the "+ProxyAuthorizationHeader+" token is not one the API server accepts for audience \""+
				ProxyAudience+"\" (kubectl podlife requests one; by hand: kubectl create token SERVICEACCOUNT --audience "+ProxyAudience+")")
			return
		}
		if err != nil || !ok {
			writeError(w, http.StatusUnauthorized, "Unauthorized: send a bearer token the API server accepts (Authorization: Bearer ..., or "+ProxyAuthorizationHeader+" through the API server's pod proxy)")
			return
		}
		attrs := Attributes(resp.User, r, node)
		decision, reason, err := authz.Authorize(r.Context(), attrs)
		if decision == authorizer.DecisionAllow {
			next.ServeHTTP(w, r)
			return
		}
		what := describe(attrs)
		if err != nil {
			log.Warn("API request not authorized", "path", r.URL.Path, "user", resp.User.GetName(), "err", err)
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("Authorization error (user=%s, %s): the API server could not be asked",
				resp.User.GetName(), what))
			return
		}
		msg := fmt.Sprintf("Forbidden: user %q cannot %s (%s)", resp.User.GetName(), what, grantedBy(attrs))
		if reason != "" {
			msg += ": " + reason
		}
		writeError(w, http.StatusForbidden, msg)
	})
}

// writeError writes {"error": msg} with code.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
