package kubelet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/podlife/podlife/lifecycle"
)

// DefaultLinkInterval is how often the kubelet's /metrics is read to tell
// whether the kubelet still reaches the API server.
const DefaultLinkInterval = 5 * time.Second

// requestCounts sums the kubelet's client-go counter rest_client_requests_total:
// requests that got an HTTP answer, and requests that failed without one
// (code="<error>": refused, reset, timed out).
type requestCounts struct{ answered, failed float64 }

// parseRequestCounts reads the text exposition format and sums
// rest_client_requests_total by whether the request got an answer. Other
// families are skipped line by line without being parsed.
func parseRequestCounts(r io.Reader) (requestCounts, bool, error) {
	var c requestCounts
	found := false
	err := scanSamples(r, "rest_client_requests_total", func(labels []byte, v float64) {
		found = true
		if bytes.Contains(labels, []byte(`code="<error>"`)) {
			c.failed += v
		} else {
			c.answered += v
		}
	})
	if err != nil {
		return c, false, err
	}
	return c, found, nil
}

// scanSamples calls fn with the labels (the text between the braces) and
// the value of every sample of one metric family in a text exposition.
// Other lines are skipped without being parsed.
func scanSamples(r io.Reader, family string, fn func(labels []byte, v float64)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	prefix := []byte(family + "{")
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, prefix) {
			continue
		}
		end := bytes.LastIndexByte(line, '}')
		if end < 0 {
			return fmt.Errorf("%s: malformed line %q", family, truncate(line))
		}
		labels, rest := line[len(prefix):end], bytes.TrimSpace(line[end+1:])
		if sp := bytes.IndexByte(rest, ' '); sp >= 0 {
			rest = rest[:sp] // a timestamp may follow the value
		}
		v, err := strconv.ParseFloat(string(rest), 64)
		if err != nil {
			return fmt.Errorf("%s: value %q: %w", family, truncate(rest), err)
		}
		fn(labels, v)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading kubelet metrics: %w", err)
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

// linkTracker turns successive request counts into the kubelet's link state:
// cut off once requests fail and none is answered between two reads; whole
// again as soon as one is answered. A read in which the kubelet made no
// request keeps the state.
type linkTracker struct {
	prev         requestCounts
	primed       bool
	lastAnswered time.Time // the last read in which answered requests grew
	lastRead     time.Time // the last /metrics read the kubelet accepted
	link         lifecycle.KubeletLink
}

// observe records one read at now and reports whether the link state changed.
func (l *linkTracker) observe(c requestCounts, now time.Time) bool {
	if !l.primed || c.answered < l.prev.answered || c.failed < l.prev.failed {
		// First read, or the kubelet restarted (counters reset).
		l.prev, l.primed, l.lastAnswered = c, true, now
		return false
	}
	answered, failed := c.answered-l.prev.answered, c.failed-l.prev.failed
	l.prev = c
	was := l.link.CutOff
	switch {
	case answered > 0:
		l.lastAnswered = now
		if was {
			l.link = lifecycle.KubeletLink{Since: now, Evidence: "the kubelet's requests to the API server are answered again"}
		}
	case failed > 0 && !was:
		l.link = lifecycle.KubeletLink{CutOff: true, Since: l.lastAnswered,
			Evidence: fmt.Sprintf("kubelet /metrics: %.0f of its requests to the API server failed without an answer and none was answered since %s",
				failed, l.lastAnswered.UTC().Format(time.RFC3339))}
	}
	return l.link.CutOff != was
}

// errUnauthorized is the kubelet's 401: it did not accept podlife's token.
var errUnauthorized = errors.New("401 Unauthorized")

// linkFromFailure reads a failed /pods poll for what it says of the
// kubelet's link to the API server. A kubelet with webhook authentication
// reviews podlife's token with the API server (TokenReview, cached for 2 m on
// kubeadm): when it rejects a token it accepted before, it cannot reach the
// API server — its /pods and /metrics are then closed to podlife, and the
// last /pods answer is the frozen copy it serves anyway. A refused connection
// means the kubelet itself is gone, which says nothing of its link. It
// reports whether the link state changed. A 401 to a token that rotated
// since the last accepted request is the new token's rejection, not a sign
// of the link. s.mu is held.
func (s *Source) linkFromFailure(err error, lastSuccess time.Time) bool {
	switch {
	case errors.Is(err, errUnauthorized) && !lastSuccess.IsZero() && !s.links.link.CutOff && !s.token.rotatedSince(lastSuccess):
		s.links.link = lifecycle.KubeletLink{CutOff: true, Since: lastSuccess,
			Evidence: fmt.Sprintf("the kubelet rejects the token it accepted until %s: its webhook cannot reach the API server to review it",
				lastSuccess.UTC().Format(time.RFC3339))}
	case errors.Is(err, syscall.ECONNREFUSED) && s.links.link.CutOff:
		s.links.link = lifecycle.KubeletLink{}
	default:
		return false
	}
	s.publishLink()
	return true
}

// publishLink makes the tracked link the source's state. s.mu is held.
func (s *Source) publishLink() {
	s.state.Link = s.links.link
	s.log.Info("kubelet link to the API server", "cutOff", s.state.Link.CutOff, "since", s.state.Link.Since, "evidence", s.state.Link.Evidence)
}

// readLink reads the kubelet's /metrics once and updates the link state.
func (s *Source) readLink(ctx context.Context) {
	c, err := s.fetchRequestCounts(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if err.Error() != s.linkErr {
			s.log.Warn("kubelet metrics unreadable: cannot tell whether the kubelet reaches the API server", "err", oneLine(err))
		}
		s.linkErr = err.Error()
		// Over the Pods API, /metrics is the only request that carries
		// podlife's token: a 401 to it says what a 401 to /pods says.
		if s.linkFromFailure(err, s.links.lastRead) {
			s.bump()
		}
		return
	}
	s.linkErr = ""
	s.links.lastRead = time.Now()
	if s.links.observe(c, time.Now()) {
		s.publishLink()
		s.bump()
	}
}

// forgetProbes drops the prober's readiness once the kubelet is whole again.
func (s *Source) forgetProbes() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readiness = readinessTracker{}
	if s.state.Readiness != nil {
		s.state.Readiness = nil
		s.bump()
	}
}

// bump marks the state changed and wakes the agent. s.mu is held.
func (s *Source) bump() {
	s.state.Generation++
	select {
	case s.updates <- struct{}{}:
	default:
	}
}

// fetchRequestCounts GETs the kubelet's /metrics and sums its API requests.
func (s *Source) fetchRequestCounts(ctx context.Context) (requestCounts, error) {
	resp, err := s.get(ctx, s.metricsURL, "text/plain")
	if err != nil {
		return requestCounts{}, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusForbidden:
		return requestCounts{}, fmt.Errorf("kubelet %s: 403 Forbidden: %s", s.metricsURL, missingMetricsPermission)
	case http.StatusUnauthorized:
		return requestCounts{}, fmt.Errorf("kubelet %s: %w: the token was rejected", s.metricsURL, errUnauthorized)
	default:
		return requestCounts{}, fmt.Errorf("kubelet %s: HTTP %d", s.metricsURL, resp.StatusCode)
	}
	c, found, err := parseRequestCounts(io.LimitReader(resp.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return c, fmt.Errorf("kubelet %s: %w", s.metricsURL, err)
	}
	if !found {
		return c, fmt.Errorf("kubelet %s: no rest_client_requests_total (a kubelet without an API server?)", s.metricsURL)
	}
	return c, nil
}
