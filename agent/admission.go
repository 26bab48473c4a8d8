package agent

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Default admission limits (Options.MaxRequestsInFlight, Options.MaxWatches).
const (
	DefaultMaxRequestsInFlight = 32
	DefaultMaxWatches          = 64
)

// retryAfter is what a refused caller is told to wait, in seconds.
const retryAfter = 1

// rejectLogEvery is how often refusals are logged at most.
const rejectLogEvery = 10 * time.Second

// requestClass is an admission class: the requests that share one limit.
type requestClass int

const (
	classAPI   requestClass = iota // API reads: pods, one pod, transitions, journal
	classWatch                     // long-lived transition watches
	numClasses
)

var classNames = [numClasses]string{classAPI: "api", classWatch: "watch"}

// classOf is the admission class of r; false for what is never refused:
// probes, /metrics and profiles (cheap, or shared by every caller).
func classOf(r *http.Request) (requestClass, bool) {
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		return 0, false
	}
	if r.URL.Query().Get("watch") == "true" {
		return classWatch, true
	}
	return classAPI, true
}

// admission bounds the requests the agent serves at once, per class. A
// request past its class's limit is answered at once with 429 Too Many
// Requests and Retry-After, as kube-apiserver's max-in-flight filter does
// (staging/src/k8s.io/apiserver/pkg/server/filters/maxinflight.go), instead
// of being accepted and starved until a timeout cuts it.
type admission struct {
	slots    [numClasses]chan struct{}
	rejected [numClasses]atomic.Uint64
	log      *slog.Logger

	mu       sync.Mutex
	lastLog  time.Time
	unlogged uint64 // refusals since the last log line
}

func newAdmission(maxRequests, maxWatches int, log *slog.Logger) *admission {
	ad := &admission{log: log}
	ad.slots[classAPI] = make(chan struct{}, maxRequests)
	ad.slots[classWatch] = make(chan struct{}, maxWatches)
	return ad
}

// wrap admits each request to h within its class's limit.
func (ad *admission) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		class, limited := classOf(r)
		if !limited {
			h.ServeHTTP(w, r)
			return
		}
		select {
		case ad.slots[class] <- struct{}{}:
			defer func() { <-ad.slots[class] }()
			h.ServeHTTP(w, r)
		default:
			ad.refuse(w, class)
		}
	})
}

// refuse answers 429 and counts the refusal.
func (ad *admission) refuse(w http.ResponseWriter, class requestClass) {
	ad.rejected[class].Add(1)
	ad.logRefusal(class)
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many %s requests in flight (limit %d): retry after %d s",
		classNames[class], cap(ad.slots[class]), retryAfter))
}

// logRefusal logs a refusal, at most once per rejectLogEvery, with the
// number refused since the last line.
func (ad *admission) logRefusal(class requestClass) {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	ad.unlogged++
	now := time.Now()
	if now.Sub(ad.lastLog) < rejectLogEvery {
		return
	}
	ad.log.Warn("shedding load: requests refused with 429", "refused", ad.unlogged, "class", classNames[class],
		"apiLimit", cap(ad.slots[classAPI]), "watchLimit", cap(ad.slots[classWatch]))
	ad.lastLog, ad.unlogged = now, 0
}

// inFlight and rejectedTotal are a class's gauge and counter for /metrics.
func (ad *admission) inFlight(c requestClass) int         { return len(ad.slots[c]) }
func (ad *admission) rejectedTotal(c requestClass) uint64 { return ad.rejected[c].Load() }
