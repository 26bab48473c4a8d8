// Package simnode is a simulated node for `podlife demo` and load tests: a
// real CRI gRPC server on a unix socket and a kubelet /pods HTTP server on
// loopback, both rendering one scripted timeline that walks pods through
// every stage of the lifecycle model, with the kubelet lagging the runtime
// by a relist period as a real one does.
package simnode

import (
	"fmt"
	"math"
	"time"
)

// simContainer is one container's truth at a moment.
type simContainer struct {
	name     string
	kind     string // init, sidecar, regular
	image    string
	attempt  int
	state    string // created, running, exited, none (never created: waiting)
	exit     int32
	reason   string // runtime terminated reason, or the kubelet waiting reason when state == none
	started  time.Time
	finished time.Time
	ready    bool
	// last termination (for the kubelet's lastState)
	lastExit     int32
	lastReason   string
	lastStarted  time.Time
	lastFinished time.Time
	waiting      string // kubelet waiting reason while exited or none (CrashLoopBackOff, ...)
}

// simPod is one pod's truth at a moment.
type simPod struct {
	ns, name, uid string
	created       time.Time
	phase         string
	reason, msg   string
	deleting      bool
	restartPolicy string
	containers    []simContainer
	logs          bool // its containers name log files (Options.LogsDir)
}

// Period is the length of the demo timeline; it loops.
const Period = 90 * time.Second

// Outage windows within the timeline.
var (
	kubeletOutage = [2]time.Duration{50 * time.Second, 60 * time.Second}
	runtimeOutage = [2]time.Duration{70 * time.Second, 80 * time.Second}
)

func inWindow(d time.Duration, w [2]time.Duration) bool { return d >= w[0] && d < w[1] }

// demoPods renders the scripted pods at elapsed time d into the current loop
// (loop start at base).
func demoPods(base time.Time, d time.Duration) []simPod {
	at := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	sec := d.Seconds()
	var pods []simPod
	add := func(p simPod) { p.uid = fmt.Sprintf("demo-%s-%d", p.name, base.Unix()); pods = append(pods, p) }
	img := "localhost/podlife/demo:1"

	// web: init container 0-4s, starting 4-8s, serving after.
	web := simPod{ns: "shop", name: "web", created: at(0), restartPolicy: "Always"}
	initC := simContainer{name: "migrate", kind: "init", image: img, state: "running", started: at(0.5)}
	app := simContainer{name: "web", kind: "regular", image: img, state: "none", waiting: "PodInitializing"}
	side := simContainer{name: "envoy", kind: "sidecar", image: img, state: "running", started: at(0.3), ready: sec >= 1}
	switch {
	case sec < 4:
		web.phase = "Pending"
	default:
		initC.state, initC.exit, initC.reason, initC.finished = "exited", 0, "Completed", at(4)
		app.state, app.started, app.waiting = "running", at(4.2), ""
		app.ready = sec >= 8
		web.phase = "Running"
	}
	web.containers = []simContainer{initC, side, app}
	add(web)

	// report: a Job that runs 10s then completes.
	job := simPod{ns: "batch", name: "report", created: at(0), restartPolicy: "Never", phase: "Running"}
	jc := simContainer{name: "report", kind: "regular", image: img, state: "running", started: at(1), ready: true}
	if sec >= 11 {
		jc.state, jc.reason, jc.finished, jc.ready = "exited", "Completed", at(11), false
		job.phase = "Succeeded"
	}
	job.containers = []simContainer{jc}
	add(job)

	// worker: exits 1 after 2s of running, backs off 4s, forever.
	add(crashLooper(base, sec, "shop", "worker", img, 6, 2, 1, "Error"))
	// hog: OOM-killed (137) after 8s of running, backs off 4s.
	add(crashLooper(base, sec, "shop", "hog", img, 12, 8, 137, "OOMKilled"))

	// cache: image pull fails: ErrImagePull, then ImagePullBackOff.
	cache := simPod{ns: "shop", name: "cache", created: at(0), restartPolicy: "Always", phase: "Pending"}
	reason := "ErrImagePull"
	if math.Mod(sec, 10) >= 2 {
		reason = "ImagePullBackOff"
	}
	cache.containers = []simContainer{{name: "redis", kind: "regular", image: "127.0.0.1:1/none/redis:7", state: "none", waiting: reason}}
	add(cache)

	// typo: InvalidImageName.
	add(simPod{ns: "shop", name: "typo", created: at(0), restartPolicy: "Always", phase: "Pending",
		containers: []simContainer{{name: "app", kind: "regular", image: "Shop/App::latest", state: "none", waiting: "InvalidImageName"}}})

	// evicted: a pod the kubelet evicted.
	add(simPod{ns: "batch", name: "evicted", created: at(0), restartPolicy: "Always", phase: "Failed", reason: "Evicted",
		msg: "The node was low on resource: memory.",
		containers: []simContainer{{name: "big", kind: "regular", image: img, state: "exited", exit: 137, reason: "Error",
			started: at(0.5), finished: at(1)}}})

	// old-web: being deleted from 20s on, gone at 30s.
	if sec < 30 {
		old := simPod{ns: "shop", name: "old-web", created: at(0), restartPolicy: "Always", phase: "Running", deleting: sec >= 20,
			containers: []simContainer{{name: "web", kind: "regular", image: img, state: "running", started: at(0.5), ready: sec < 20}}}
		add(old)
	}
	return pods
}

// crashLooper is a container that runs for runFor seconds, exits with code,
// and is restarted every period seconds.
func crashLooper(base time.Time, sec float64, ns, name, img string, period, runFor float64, code int32, reason string) simPod {
	at := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	p := simPod{ns: ns, name: name, created: at(0), restartPolicy: "Always", phase: "Running"}
	n := int(sec / period)
	start := float64(n)*period + 0.5
	c := simContainer{name: name, kind: "regular", image: img, attempt: n, state: "running", started: at(start), ready: true}
	if n > 0 {
		c.lastExit, c.lastReason = code, reason
		c.lastStarted, c.lastFinished = at(float64(n-1)*period+0.5), at(float64(n-1)*period+0.5+runFor)
	}
	switch {
	case sec < start:
		// between attempts: the last one exited, the kubelet backs off
		c.attempt, c.state, c.exit, c.reason = n-1, "exited", code, reason
		c.started, c.finished = at(float64(n-1)*period+0.5), at(float64(n-1)*period+0.5+runFor)
		c.waiting, c.ready = "CrashLoopBackOff", false
	case sec >= start+runFor:
		c.state, c.exit, c.reason, c.finished, c.ready = "exited", code, reason, at(start+runFor), false
		c.waiting = "CrashLoopBackOff"
		c.lastExit, c.lastReason, c.lastStarted, c.lastFinished = code, reason, c.started, c.finished
	}
	if n == 0 && sec < start {
		c.attempt, c.state, c.waiting = 0, "none", "ContainerCreating"
	}
	p.containers = []simContainer{c}
	return p
}

// loadPods renders n steady serving pods; churn flips containers through
// restarts: container k of pod i restarts when the churn clock passes it.
func loadPods(base time.Time, n, per int, changes int) []simPod {
	pods := make([]simPod, 0, n)
	total := n * per
	for i := 0; i < n; i++ {
		p := loadPod(base, i, per)
		for k := range p.containers {
			if idx := i*per + k; total > 0 && changes > idx {
				p.containers[k].attempt = (changes - idx + total - 1) / total
			}
		}
		pods = append(pods, p)
	}
	return pods
}

// loadPod is load pod i, created at base, serving.
func loadPod(base time.Time, i, per int) simPod {
	p := simPod{ns: "load", name: fmt.Sprintf("load-%04d", i), uid: fmt.Sprintf("load-%04d", i), created: base,
		restartPolicy: "Always", phase: "Running"}
	for k := 0; k < per; k++ {
		p.containers = append(p.containers, simContainer{name: fmt.Sprintf("c%d", k), kind: "regular",
			image: "localhost/podlife/demo:1", state: "running", started: base, ready: true})
	}
	return p
}
