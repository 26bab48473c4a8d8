package secure

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	tokencache "k8s.io/apiserver/pkg/authentication/token/cache"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/rest"
)

// Review timeouts and cache lifetimes. The TTLs are the kubelet's for its
// webhook authentication and authorization (2 min for a token, 5 min for an
// allowed request, 30 s for a denied one); a token the API server rejected is
// asked about again after 10 s, so a new binding or token works quickly.
const (
	ReviewTimeout   = 5 * time.Second
	TokenTTL        = 2 * time.Minute
	TokenFailureTTL = 10 * time.Second
	AllowTTL        = 5 * time.Minute
	DenyTTL         = 30 * time.Second
	// decisionCacheSize bounds the cached authorization decisions (one per
	// user, groups and attributes), as the webhook authorizer's 8192.
	decisionCacheSize = 8192
)

// reviewClient is a REST client for gv (authentication.k8s.io/v1 or
// authorization.k8s.io/v1) on rc's API server, with ReviewTimeout and a rate
// limit of its own.
func reviewClient(rc *rest.Config, gv schema.GroupVersion) (*rest.RESTClient, error) {
	// A scheme of the only two API groups the reviews use.
	scheme := runtime.NewScheme()
	if err := authenticationv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("API scheme: %w", err)
	}
	if err := authorizationv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("API scheme: %w", err)
	}
	c := rest.CopyConfig(rc)
	c.APIPath, c.GroupVersion = "/apis", &gv
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	c.Timeout = ReviewTimeout
	c.QPS, c.Burst = 20, 40
	if c.UserAgent == "" {
		c.UserAgent = "podlife"
	}
	rcl, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("API client for %s: %w", gv, err)
	}
	return rcl, nil
}

// NewAuthenticator authenticates a request's bearer token with a TokenReview
// on rc's API server, as a delegating authenticator does
// (k8s.io/apiserver's authenticatorfactory): the answers cached by
// k8s.io/apiserver's token cache (TokenTTL, TokenFailureTTL; errors are not
// cached), the user put in system:authenticated.
func NewAuthenticator(rc *rest.Config) (authenticator.Request, error) {
	c, err := reviewClient(rc, authenticationv1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	return newBearer(tokencache.New(&tokenReviewer{c}, false, TokenTTL, TokenFailureTTL)), nil
}

// newBearer authenticates a request's bearer token with t and puts the user
// in system:authenticated.
func newBearer(t authenticator.Token) authenticator.Request {
	return group.NewAuthenticatedGroupAdder(bearertoken.New(t))
}

// tokenReviewer is an authenticator.Token that asks the API server.
type tokenReviewer struct{ c rest.Interface }

// AuthenticateToken creates a TokenReview for token.
func (t *tokenReviewer) AuthenticateToken(ctx context.Context, token string) (*authenticator.Response, bool, error) {
	// The audiences the request asks for (authenticator.WithAudiences; none:
	// the API server's own), as the webhook token authenticator sends them.
	auds, _ := authenticator.AudiencesFrom(ctx)
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: auds}}
	var out authenticationv1.TokenReview
	if err := t.c.Post().Resource("tokenreviews").Body(review).Do(ctx).Into(&out); err != nil {
		return nil, false, &reviewError{fmt.Errorf("TokenReview: %w", err)}
	}
	if !out.Status.Authenticated {
		// The API server answered: the token is not one it accepts
		// (status.error says why, e.g. "invalid bearer token").
		return nil, false, nil
	}
	if len(auds) > 0 && len(auds.Intersect(out.Status.Audiences)) == 0 {
		return nil, false, nil // valid, but not for these audiences
	}
	u := out.Status.User
	info := &user.DefaultInfo{Name: u.Username, UID: u.UID, Groups: u.Groups}
	if len(u.Extra) > 0 {
		info.Extra = make(map[string][]string, len(u.Extra))
		for k, v := range u.Extra {
			info.Extra[k] = v
		}
	}
	return &authenticator.Response{User: info, Audiences: out.Status.Audiences}, true, nil
}

// reviewError is a TokenReview that did not come back with an answer, as
// opposed to a token the API server rejected.
type reviewError struct{ err error }

func (e *reviewError) Error() string { return e.err.Error() }
func (e *reviewError) Unwrap() error { return e.err }

// NewAuthorizer authorizes a request with a SubjectAccessReview on rc's API
// server, as a delegating authorizer does (k8s.io/apiserver's
// authorizerfactory), with its decisions cached: allowed for AllowTTL, denied
// for DenyTTL, failures not at all.
func NewAuthorizer(rc *rest.Config) (authorizer.Authorizer, error) {
	c, err := reviewClient(rc, authorizationv1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	return &accessReviewer{c: c, cache: utilcache.NewLRUExpireCache(decisionCacheSize)}, nil
}

// accessReviewer is an authorizer.Authorizer that asks the API server.
type accessReviewer struct {
	c     rest.Interface
	cache *utilcache.LRUExpireCache
}

// ConditionsAwareAuthorize is Authorize: podlife's authorizer sets no
// conditions (k8s.io/apiserver 1.37's contract for such authorizers).
func (r *accessReviewer) ConditionsAwareAuthorize(ctx context.Context, a authorizer.Attributes) authorizer.ConditionsAwareDecision {
	return authorizer.ConditionsAwareDecisionFromParts(r.Authorize(ctx, a))
}

// EvaluateConditions refuses: there are never conditions to evaluate.
func (r *accessReviewer) EvaluateConditions(context.Context, authorizer.ConditionsAwareDecision, authorizer.ConditionsData) (authorizer.Decision, string, error) {
	return authorizer.DecisionDeny, "", authorizer.ErrorConditionEvaluationNotSupported
}

// Authorize creates a SubjectAccessReview for a, or takes a cached decision.
func (r *accessReviewer) Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	spec := authorizationv1.SubjectAccessReviewSpec{}
	if u := a.GetUser(); u != nil {
		spec.User, spec.UID, spec.Groups = u.GetName(), u.GetUID(), u.GetGroups()
		if extra := u.GetExtra(); len(extra) > 0 {
			spec.Extra = make(map[string]authorizationv1.ExtraValue, len(extra))
			for k, v := range extra {
				spec.Extra[k] = v
			}
		}
	}
	if a.IsResourceRequest() {
		spec.ResourceAttributes = &authorizationv1.ResourceAttributes{Namespace: a.GetNamespace(), Verb: a.GetVerb(),
			Group: a.GetAPIGroup(), Version: a.GetAPIVersion(), Resource: a.GetResource(),
			Subresource: a.GetSubresource(), Name: a.GetName()}
	} else {
		spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: a.GetPath(), Verb: a.GetVerb()}
	}
	key, err := json.Marshal(spec)
	if err != nil {
		return authorizer.DecisionNoOpinion, "", fmt.Errorf("SubjectAccessReview: %w", err)
	}
	var status authorizationv1.SubjectAccessReviewStatus
	if cached, ok := r.cache.Get(string(key)); ok {
		status = cached.(authorizationv1.SubjectAccessReviewStatus)
	} else {
		var out authorizationv1.SubjectAccessReview
		review := &authorizationv1.SubjectAccessReview{Spec: spec}
		if err := r.c.Post().Resource("subjectaccessreviews").Body(review).Do(ctx).Into(&out); err != nil {
			return authorizer.DecisionNoOpinion, "", fmt.Errorf("SubjectAccessReview: %w", err)
		}
		status = out.Status
		ttl := DenyTTL
		if status.Allowed && !status.Denied {
			ttl = AllowTTL
		}
		r.cache.Add(string(key), status, ttl)
	}
	if status.Allowed && !status.Denied {
		return authorizer.DecisionAllow, status.Reason, nil
	}
	reason := status.Reason
	if status.EvaluationError != "" {
		reason = joinReason(reason, status.EvaluationError)
	}
	return authorizer.DecisionDeny, reason, nil
}

// joinReason joins two parts of a reason, either of which may be empty.
func joinReason(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
