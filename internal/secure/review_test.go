package secure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/rest"
)

// reviewServer is an API server's two review endpoints on loopback: it
// decodes each TokenReview and SubjectAccessReview podlife posts, keeps it,
// and answers with the status the test's function gives (or fails with
// fail, an HTTP status).
type reviewServer struct {
	mu     sync.Mutex
	tokens []authenticationv1.TokenReview
	access []authorizationv1.SubjectAccessReview
	fail   int

	tokenStatus  func(authenticationv1.TokenReviewSpec) authenticationv1.TokenReviewStatus
	accessStatus func(authorizationv1.SubjectAccessReviewSpec) authorizationv1.SubjectAccessReviewStatus
}

func (s *reviewServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.fail)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcdserver: request timed out","code":%d}`, s.fail)
		return
	}
	post := r.Method == http.MethodPost
	switch {
	case post && r.URL.Path == "/apis/authentication.k8s.io/v1/tokenreviews":
		answer(w, r, &s.tokens, func(tr *authenticationv1.TokenReview) { tr.Status = s.tokenStatus(tr.Spec) })
	case post && r.URL.Path == "/apis/authorization.k8s.io/v1/subjectaccessreviews":
		answer(w, r, &s.access, func(sar *authorizationv1.SubjectAccessReview) { sar.Status = s.accessStatus(sar.Spec) })
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}

// answer decodes a posted review, keeps it, and answers it with the status
// set by fill, as the API server creates a review.
func answer[T any](w http.ResponseWriter, r *http.Request, kept *[]T, fill func(*T)) {
	var review T
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	*kept = append(*kept, review)
	fill(&review)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(review)
}

// counts is how many reviews of each kind the server has been asked.
func (s *reviewServer) counts() (tokens, access int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens), len(s.access)
}

func (s *reviewServer) setFail(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = code
}

func startReviewServer(t *testing.T, s *reviewServer) *rest.Config {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &rest.Config{Host: srv.URL}
}

// alice is the user the fake API server vouches for.
var alice = authenticationv1.UserInfo{Username: "system:serviceaccount:monitoring:prometheus", UID: "uid-alice",
	Groups: []string{"system:serviceaccounts", "system:serviceaccounts:monitoring"},
	Extra:  map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"prometheus-0"}}}

// tokenServer accepts "good" for the audiences asked, "podlife-only" only for
// audience podlife, and nothing else (with status.error, as the API server).
func tokenServer() *reviewServer {
	return &reviewServer{tokenStatus: func(spec authenticationv1.TokenReviewSpec) authenticationv1.TokenReviewStatus {
		switch spec.Token {
		case "good":
			return authenticationv1.TokenReviewStatus{Authenticated: true, User: alice, Audiences: spec.Audiences}
		case "podlife-only":
			return authenticationv1.TokenReviewStatus{Authenticated: true, User: alice, Audiences: []string{ProxyAudience}}
		}
		return authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
	}}
}

// authenticate runs one request with Authorization: Bearer token, asking
// for auds (none: the API server's own).
func authenticate(t *testing.T, a authenticator.Request, token string, auds ...string) (*authenticator.Response, bool, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/v1/pods", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	if len(auds) > 0 {
		r = r.WithContext(authenticator.WithAudiences(r.Context(), auds))
	}
	return a.AuthenticateRequest(r)
}

// TestTokenReviewRequest checks the TokenReview podlife sends and how it
// reads the answer, as k8s.io/apiserver's webhook token authenticator does
// (plugin/pkg/authenticator/token/webhook/webhook.go AuthenticateToken):
// spec.token the bearer token, spec.audiences the request's (none: the API
// server's own); the user's name, UID, groups and extra taken over, and
// system:authenticated added (pkg/authentication/group
// AuthenticatedGroupAdder); a token valid only for other audiences, or not
// authenticated, rejected without an error; a review that got no answer an
// error.
func TestTokenReviewRequest(t *testing.T) {
	s := tokenServer()
	authn, err := NewAuthenticator(startReviewServer(t, s))
	if err != nil {
		t.Fatal(err)
	}
	resp, ok, err := authenticate(t, authn, "good")
	if err != nil || !ok {
		t.Fatalf("good token: ok=%v err=%v", ok, err)
	}
	if len(s.tokens) != 1 {
		t.Fatalf("%d TokenReviews, want 1", len(s.tokens))
	}
	tr := s.tokens[0]
	if tr.APIVersion != "authentication.k8s.io/v1" || tr.Kind != "TokenReview" || tr.Spec.Token != "good" || len(tr.Spec.Audiences) != 0 {
		t.Fatalf("TokenReview sent %s %s spec %+v, want authentication.k8s.io/v1 TokenReview, token good, no audiences",
			tr.APIVersion, tr.Kind, tr.Spec)
	}
	u := resp.User
	wantGroups := append(slices.Clone(alice.Groups), user.AllAuthenticated)
	if u.GetName() != alice.Username || u.GetUID() != alice.UID || !slices.Equal(u.GetGroups(), wantGroups) ||
		!reflect.DeepEqual(u.GetExtra(), map[string][]string{"authentication.kubernetes.io/pod-name": {"prometheus-0"}}) {
		t.Fatalf("user %q uid %q groups %v extra %v, want %+v in %s", u.GetName(), u.GetUID(), u.GetGroups(), u.GetExtra(), alice, user.AllAuthenticated)
	}

	// The audience podlife (a token sent through the API server's pod proxy).
	if _, ok, err := authenticate(t, authn, "podlife-only", ProxyAudience); !ok || err != nil {
		t.Fatalf("podlife-only for audience podlife: ok=%v err=%v", ok, err)
	}
	if got := s.tokens[len(s.tokens)-1].Spec; got.Token != "podlife-only" || !slices.Equal(got.Audiences, []string{ProxyAudience}) {
		t.Fatalf("TokenReview spec %+v, want token podlife-only for audiences [podlife]", got)
	}
	// Valid, but for another audience than the one asked for; and not
	// valid: rejected, which is no review error (bearertoken's "invalid
	// bearer token" is all the request says).
	re := (*reviewError)(nil)
	if _, ok, err := authenticate(t, authn, "podlife-only", "other"); ok || errors.As(err, &re) {
		t.Fatalf("podlife-only for audience other: ok=%v err=%v, want rejected", ok, err)
	}
	if _, ok, err := authenticate(t, authn, "forged"); ok || errors.As(err, &re) {
		t.Fatalf("forged: ok=%v err=%v, want rejected", ok, err)
	}
	s.setFail(http.StatusInternalServerError)
	_, ok, err = authenticate(t, authn, "unseen")
	if ok || !errors.As(err, &re) {
		t.Fatalf("review failed: ok=%v err=%v, want a reviewError", ok, err)
	}
}

// TestTokenReviewCache: answers are cached per token and audiences
// (k8s.io/apiserver pkg/authentication/token/cache, TokenTTL for an accepted
// token, TokenFailureTTL for a rejected one), failures not at all, so the API
// server is asked again once it answers.
func TestTokenReviewCache(t *testing.T) {
	s := tokenServer()
	authn, err := NewAuthenticator(startReviewServer(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ask := func(token string, wantOK bool, wantReviews int, auds ...string) {
		t.Helper()
		_, ok, err := authenticate(t, authn, token, auds...)
		if n, _ := s.counts(); ok != wantOK || n != wantReviews {
			t.Fatalf("%s %v: ok=%v err=%v after %d TokenReviews, want ok=%v after %d", token, auds, ok, err, n, wantOK, wantReviews)
		}
	}
	ask("good", true, 1)
	ask("good", true, 1)                // hit
	ask("good", true, 2, ProxyAudience) // other audiences: miss
	ask("forged", false, 3)             // a rejection is cached too
	ask("forged", false, 3)             // hit
	s.setFail(http.StatusInternalServerError)
	_, _, err = authenticate(t, authn, "new")
	if err == nil {
		t.Fatal("failed review: no error")
	}
	ask("good", true, 3) // the cache still answers while the API server fails
	s.setFail(0)
	ask("new", false, 4) // the failure was not cached: asked again
}

// sarServer allows alice get nodes/podlife and nodes/metrics, denies other
// subresources with a reason, and says denied with an evaluation error for
// the non-resource path /broken.
func sarServer() *reviewServer {
	return &reviewServer{accessStatus: func(spec authorizationv1.SubjectAccessReviewSpec) authorizationv1.SubjectAccessReviewStatus {
		switch ra := spec.ResourceAttributes; {
		case spec.NonResourceAttributes != nil && spec.NonResourceAttributes.Path == "/broken":
			return authorizationv1.SubjectAccessReviewStatus{Reason: "no RBAC policy matched", EvaluationError: "webhook timed out"}
		case ra != nil && spec.User == alice.Username && (ra.Subresource == APISubresource || ra.Subresource == MetricsSubresource):
			return authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: `RBAC: allowed by ClusterRoleBinding "podlife-reader"`}
		case ra != nil && ra.Subresource == "denied-anyway":
			return authorizationv1.SubjectAccessReviewStatus{Allowed: true, Denied: true, Reason: "denied by policy"}
		}
		return authorizationv1.SubjectAccessReviewStatus{Reason: "no RBAC policy matched"}
	}}
}

// aliceInfo is alice as authenticated (the authenticator's user.Info).
func aliceInfo() user.Info {
	return &user.DefaultInfo{Name: alice.Username, UID: alice.UID, Groups: append(slices.Clone(alice.Groups), user.AllAuthenticated),
		Extra: map[string][]string{"authentication.kubernetes.io/pod-name": {"prometheus-0"}}}
}

// TestSubjectAccessReviewRequest checks the SubjectAccessReview podlife
// sends for a request, as k8s.io/apiserver's webhook authorizer does
// (plugin/pkg/authorizer/webhook/webhook.go Authorize and
// resourceAttributesFrom): the user's name, UID, groups and extra; for a
// resource request verb, group, version, resource, subresource, name and
// namespace; for a non-resource request path and verb; and how it reads the
// answer: allowed, denied (an explicit Denied wins over Allowed), the
// reason with any evaluation error, and a review that got no answer as an
// error without an opinion.
func TestSubjectAccessReviewRequest(t *testing.T) {
	s := sarServer()
	authz, err := NewAuthorizer(startReviewServer(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name, method, path string
		sub, verb          string
		decision           authorizer.Decision
		reason             string
	}{
		{"API read", http.MethodGet, "/api/v1/pods", APISubresource, "get", authorizer.DecisionAllow, `RBAC: allowed by ClusterRoleBinding "podlife-reader"`},
		{"metrics", http.MethodGet, "/metrics", MetricsSubresource, "get", authorizer.DecisionAllow, `RBAC: allowed by ClusterRoleBinding "podlife-reader"`},
		{"pprof, a POST", http.MethodPost, "/debug/pprof/profile", OtherSubresource, "create", authorizer.DecisionDeny, "no RBAC policy matched"},
	} {
		decision, reason, err := authz.Authorize(ctx, Attributes(aliceInfo(), httptest.NewRequest(tc.method, tc.path, nil), "node-7"))
		if err != nil || decision != tc.decision || reason != tc.reason {
			t.Fatalf("%s: decision %v %q err %v, want %v %q", tc.name, decision, reason, err, tc.decision, tc.reason)
		}
		sar := s.access[len(s.access)-1]
		want := authorizationv1.SubjectAccessReviewSpec{User: alice.Username, UID: alice.UID,
			Groups: append(slices.Clone(alice.Groups), user.AllAuthenticated),
			Extra:  map[string]authorizationv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"prometheus-0"}},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: tc.verb, Group: "", Version: "v1", Resource: "nodes",
				Subresource: tc.sub, Name: "node-7", Namespace: ""}}
		if sar.APIVersion != "authorization.k8s.io/v1" || sar.Kind != "SubjectAccessReview" || !reflect.DeepEqual(sar.Spec, want) {
			t.Fatalf("%s: sent %s %s\n%+v\n%+v, want\n%+v\n%+v", tc.name, sar.APIVersion, sar.Kind, sar.Spec, sar.Spec.ResourceAttributes, want, want.ResourceAttributes)
		}
	}

	// A non-resource request (podlife's own paths are all resource
	// requests; the authorizer serves any).
	nonResource := authorizer.AttributesRecord{User: aliceInfo(), Verb: "post", Path: "/broken", ResourceRequest: false}
	decision, reason, err := authz.Authorize(ctx, nonResource)
	if err != nil || decision != authorizer.DecisionDeny || reason != "no RBAC policy matched; webhook timed out" {
		t.Fatalf("non-resource: %v %q %v, want deny with the reason and the evaluation error", decision, reason, err)
	}
	if sar := s.access[len(s.access)-1].Spec; sar.ResourceAttributes != nil ||
		!reflect.DeepEqual(sar.NonResourceAttributes, &authorizationv1.NonResourceAttributes{Path: "/broken", Verb: "post"}) {
		t.Fatalf("non-resource SubjectAccessReview %+v %+v, want only nonResourceAttributes /broken post", sar.ResourceAttributes, sar.NonResourceAttributes)
	}

	// Allowed and Denied both set: denied.
	denied := Attributes(aliceInfo(), httptest.NewRequest(http.MethodGet, "/x", nil), "node-7")
	denied.Subresource = "denied-anyway"
	if decision, reason, err := authz.Authorize(ctx, denied); err != nil || decision != authorizer.DecisionDeny || reason != "denied by policy" {
		t.Fatalf("allowed and denied: %v %q %v, want deny", decision, reason, err)
	}

	// A namespaced resource request carries its namespace.
	ns := authorizer.AttributesRecord{User: aliceInfo(), Verb: "list", Namespace: "life", APIGroup: "autoscaling", APIVersion: "v2",
		Resource: "horizontalpodautoscalers", Subresource: "status", Name: "web", ResourceRequest: true}
	authz.Authorize(ctx, ns)
	if ra := s.access[len(s.access)-1].Spec.ResourceAttributes; ra == nil || *ra != (authorizationv1.ResourceAttributes{
		Namespace: "life", Verb: "list", Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers", Subresource: "status", Name: "web"}) {
		t.Fatalf("namespaced request: %+v", ra)
	}

	s.setFail(http.StatusInternalServerError)
	decision, _, err = authz.Authorize(ctx, Attributes(aliceInfo(), httptest.NewRequest(http.MethodGet, "/api/v1/nodes", nil), "node-8"))
	if err == nil || decision != authorizer.DecisionNoOpinion {
		t.Fatalf("review failed: %v %v, want no opinion and an error", decision, err)
	}
}

// fakeClock is a utilcache.Clock the test moves.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// TestSubjectAccessReviewCache: decisions are cached by the whole review
// spec (user and attributes), an allowed one for AllowTTL (5 min), a denied
// one for DenyTTL (30 s), the kubelet's webhook authorization TTLs
// (pkg/kubelet/apis/config/v1beta1/defaults.go
// Authorization.Webhook.CacheAuthorizedTTL, CacheUnauthorizedTTL); failures
// are not cached.
func TestSubjectAccessReviewCache(t *testing.T) {
	s := sarServer()
	rc := startReviewServer(t, s)
	made, err := NewAuthorizer(rc)
	if err != nil {
		t.Fatal(err)
	}
	// The same reviewer on a clock the test moves.
	clock := &fakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	authz := made.(*accessReviewer)
	authz.cache = utilcache.NewLRUExpireCacheWithClock(decisionCacheSize, clock)
	ctx := context.Background()
	start := clock.now
	ask := func(path string, u user.Info, after time.Duration, want authorizer.Decision, wantReviews int) {
		t.Helper()
		clock.now = start.Add(after)
		attrs := Attributes(u, httptest.NewRequest(http.MethodGet, path, nil), "node-7")
		if path == "/denied-anyway" {
			attrs.Subresource = "denied-anyway" // allowed, and denied: a denial
		}
		decision, _, err := authz.Authorize(ctx, attrs)
		if _, n := s.counts(); err != nil || decision != want || n != wantReviews {
			t.Fatalf("%s at +%s: %v err %v after %d reviews, want %v after %d", path, after, decision, err, n, want, wantReviews)
		}
	}
	bob := &user.DefaultInfo{Name: "bob", Groups: []string{user.AllAuthenticated}}
	ask("/metrics", aliceInfo(), 0, authorizer.DecisionAllow, 1)
	ask("/metrics", aliceInfo(), 4*time.Minute+59*time.Second, authorizer.DecisionAllow, 1) // hit
	ask("/api/v1/pods", aliceInfo(), time.Minute, authorizer.DecisionAllow, 2)              // other attributes: miss
	ask("/metrics", bob, time.Minute, authorizer.DecisionDeny, 3)                           // other user: miss
	ask("/metrics", bob, time.Minute+29*time.Second, authorizer.DecisionDeny, 3)            // denied: hit within 30 s
	ask("/metrics", bob, time.Minute+31*time.Second, authorizer.DecisionDeny, 4)            // ...asked again after
	ask("/metrics", aliceInfo(), 5*time.Minute+time.Second, authorizer.DecisionAllow, 5)    // allowed: asked again after 5 min
	ask("/denied-anyway", aliceInfo(), 0, authorizer.DecisionDeny, 6)
	ask("/denied-anyway", aliceInfo(), 29*time.Second, authorizer.DecisionDeny, 6)
	ask("/denied-anyway", aliceInfo(), 31*time.Second, authorizer.DecisionDeny, 7) // a denial's TTL

	s.setFail(http.StatusInternalServerError)
	clock.now = start.Add(time.Hour)
	if d, _, err := authz.Authorize(ctx, Attributes(bob, httptest.NewRequest(http.MethodGet, "/x", nil), "node-7")); err == nil || d != authorizer.DecisionNoOpinion {
		t.Fatalf("failed review: %v %v", d, err)
	}
	s.setFail(0)
	ask("/x", bob, time.Hour, authorizer.DecisionDeny, 8) // the failure was not cached
}
