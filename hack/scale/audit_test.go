package scale

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// auditPolicy records, at Metadata level, the requests of the kubelets (and
// the Lease probes: group system:nodes), of podlife's service account and of
// the controllers, each once when it completes; nothing else.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
  userGroups: ["system:nodes", "system:serviceaccounts:podlife", "system:serviceaccounts:kube-system"]
- level: Metadata
  users: ["system:kube-controller-manager", "system:kube-scheduler"]
- level: None
`

// request is one audited request.
type request struct {
	At       time.Time // received
	Latency  time.Duration
	Client   string // podlife, kubelet, probe, controllers or other
	User     string
	Verb     string
	Resource string // resource[/subresource]
	Code     int
}

// auditEvent is what the harness reads of an audit.k8s.io/v1 Event.
type auditEvent struct {
	Stage string `json:"stage"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	Verb      string `json:"verb"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	RequestURI     string `json:"requestURI"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Received time.Time `json:"requestReceivedTimestamp"`
	Stage2   time.Time `json:"stageTimestamp"`
}

// clientOf names the client a user is: podlife's agents, the hollow
// kubelets, the Lease probes, the controllers (and the scheduler).
func clientOf(user string) string {
	switch {
	case user == "system:kube-controller-manager" || user == "system:kube-scheduler" ||
		strings.HasPrefix(user, "system:serviceaccount:kube-system:"):
		return "controllers"
	case user == agentUser:
		return "podlife"
	case strings.HasPrefix(user, "system:node:"+probePrefix):
		return "probe"
	case strings.HasPrefix(user, "system:node:"):
		return "kubelet"
	}
	return "other"
}

// readAudit reads the completed requests of an audit log (JSON lines).
func readAudit(r io.Reader) ([]request, error) {
	var out []request
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("audit line %q: %w", truncate(sc.Text(), 200), err)
		}
		if e.Stage != "ResponseComplete" && e.Stage != "Panic" {
			continue
		}
		q := request{At: e.Received, Latency: e.Stage2.Sub(e.Received), User: e.User.Username, Client: clientOf(e.User.Username), Verb: e.Verb}
		if e.ObjectRef != nil {
			q.Resource = e.ObjectRef.Resource
			if e.ObjectRef.Subresource != "" {
				q.Resource += "/" + e.ObjectRef.Subresource
			}
		} else {
			q.Resource = strings.SplitN(e.RequestURI, "?", 2)[0] // /readyz
		}
		if e.ResponseStatus != nil {
			q.Code = e.ResponseStatus.Code
		}
		out = append(out, q)
	}
	return out, sc.Err()
}

// readAuditFile reads the audit log at path.
func readAuditFile(path string) ([]request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAudit(f)
}

// window is the requests received in [from, to).
func window(reqs []request, from, to time.Time) []request {
	var out []request
	for _, q := range reqs {
		if !q.At.Before(from) && q.At.Before(to) {
			out = append(out, q)
		}
	}
	return out
}

// rates are requests per node per minute of one client over a window, by
// verb and resource, and in all.
type rates struct {
	Total   float64
	ByKind  map[string]float64 // "verb resource"
	Watches float64            // watch opens among them
}

// perNodeMinute sums a client's requests in a window of length d over n
// nodes.
func perNodeMinute(reqs []request, client string, n int, d time.Duration) rates {
	r := rates{ByKind: map[string]float64{}}
	scale := 1 / (float64(n) * d.Minutes())
	for _, q := range reqs {
		if q.Client != client {
			continue
		}
		r.Total += scale
		r.ByKind[q.Verb+" "+q.Resource] += scale
		if q.Verb == "watch" {
			r.Watches += scale
		}
	}
	return r
}

// String lists the kinds, most first.
func (r rates) String() string {
	kinds := make([]string, 0, len(r.ByKind))
	for k := range r.ByKind {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return r.ByKind[kinds[i]] > r.ByKind[kinds[j]] })
	var b strings.Builder
	fmt.Fprintf(&b, "%.2f", r.Total)
	for i, k := range kinds {
		if i == 6 {
			b.WriteString(", ...")
			break
		}
		fmt.Fprintf(&b, "%s %s %.2f", map[bool]string{true: " (", false: ","}[i == 0], k, r.ByKind[k])
	}
	if len(kinds) > 0 {
		b.WriteString(")")
	}
	return b.String()
}

// peak is the most requests of a client received in one second of a window,
// and when.
func peak(reqs []request, client string) (int, time.Time) {
	per := map[int64]int{}
	for _, q := range reqs {
		if q.Client == client {
			per[q.At.Unix()]++
		}
	}
	best, at := 0, int64(0)
	for s, n := range per {
		if n > best || n == best && s < at {
			best, at = n, s
		}
	}
	return best, time.Unix(at, 0)
}

// serverLatency is how long the API server took, by the audit log, for one
// client's requests of one verb.
func serverLatency(reqs []request, client, verb string) quantiles {
	var lat []time.Duration
	errs := 0
	for _, q := range reqs {
		if q.Client == client && q.Verb == verb {
			lat = append(lat, q.Latency)
			if q.Code >= 400 {
				errs++
			}
		}
	}
	return quantilesOf(lat, errs)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
