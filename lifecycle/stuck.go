package lifecycle

import (
	"fmt"
	"slices"
	"time"
)

// StageClock remembers since when each pod has been in its stage, to find
// pods stuck in a transient stage. It is not safe for concurrent use.
type StageClock struct {
	pods map[string]*stageEntry // by pod UID
	// waiting are the entries that may yet be reported stuck (a transient
	// stage, not reported): all a snapshot's pods need not be looked at.
	waiting map[string]*stageEntry
	last    []*PodView // the pods of the last snapshot
}

type stageEntry struct {
	stage    Stage
	since    time.Time
	reported bool
	view     *PodView // the pod's last view; nil for one seeded and not seen yet
}

// wait makes e one of the entries that may be reported stuck, if it may.
func (c *StageClock) wait(uid string, e *stageEntry) {
	if !e.reported && e.stage != StageServing && e.stage != StageTerminated {
		c.waiting[uid] = e
	}
}

// init makes the clock's maps.
func (c *StageClock) init() {
	if c.pods == nil {
		c.pods, c.waiting = map[string]*stageEntry{}, map[string]*stageEntry{}
	}
}

// StageSince is a pod's stage, since when it has been in it, and whether it
// was reported stuck there: what the StageClock keeps, and the journal
// persists so the clock survives an agent restart.
type StageSince struct {
	Stage    Stage     `json:"stage"`
	Since    time.Time `json:"since"`
	Reported bool      `json:"reported,omitempty"`
}

// Seed starts the clock from stages recorded before (by pod UID): a pod
// still in the recorded stage at the next snapshot keeps its old since, so a
// pod crash-looping for days does not read "for 5m" after a restart, and is
// not reported stuck again. Seeded late (the journal opened after the agent
// had begun), a pod the clock already has in the recorded stage goes back to
// the recorded since where that is earlier; one in another stage keeps the
// clock's, which is newer.
func (c *StageClock) Seed(stages map[string]StageSince) {
	c.init()
	for uid, s := range stages {
		e := c.pods[uid]
		switch {
		case e == nil:
			e = &stageEntry{stage: s.Stage, since: s.Since, reported: s.Reported}
			c.pods[uid] = e
			c.wait(uid, e)
		case e.stage == s.Stage:
			if s.Since.Before(e.since) {
				e.since = s.Since
			}
			e.reported = e.reported || s.Reported
		}
	}
}

// Stuck records the snapshot's stages and returns one StageStuck transition
// for each pod that has now been Initializing, Starting, Failing or Unknown
// for longer than threshold — once per stay in a stage, in the snapshot's
// order. A pod whose view is the very one the last snapshot held at the same
// place (the one-change path hands unchanged views on) is in the same stage:
// only the pods that changed and those that may be reported are looked at.
func (c *StageClock) Stuck(s *Snapshot, threshold time.Duration) []Transition {
	c.init()
	for i, p := range s.Pods {
		if Unchanged(c.last, s, i) {
			continue
		}
		e := c.pods[p.UID]
		if e == nil || e.stage != p.Stage {
			e = &stageEntry{stage: p.Stage, since: s.At}
			c.pods[p.UID] = e
			c.wait(p.UID, e)
		}
		e.view = p
	}
	c.last = s.Pods
	ForgetOthers(c.pods, s)
	var out []Transition
	for uid, e := range c.waiting {
		switch {
		case c.pods[uid] != e || e.reported: // gone, in another stage, or reported (Seed)
			delete(c.waiting, uid)
		case e.view == nil || threshold <= 0 || s.At.Sub(e.since) < threshold:
		default:
			p := e.view
			e.reported = true
			delete(c.waiting, uid)
			out = append(out, Transition{Kind: TransitionStageStuck, Namespace: p.Namespace, Pod: p.Name, UID: p.UID,
				From: string(p.Stage), To: string(p.Stage), Reason: p.StageReason, ObservedAt: s.At, HappenedAt: e.since,
				Detail: fmt.Sprintf("in stage %s for %s (threshold %s)", p.Stage, s.At.Sub(e.since).Round(time.Second), threshold)})
		}
	}
	slices.SortFunc(out, func(a, b Transition) int { return podOrder(a.Namespace, a.Pod, a.UID, b.Namespace, b.Pod, b.UID) })
	return out
}

// Unchanged reports whether s's i-th pod is the very view that last (an
// earlier snapshot's pods) held at i: the one-change path hands the views
// that did not change on as they were, in place, and a view is never
// modified, so what was made of it then still holds.
func Unchanged(last []*PodView, s *Snapshot, i int) bool {
	return i < len(last) && last[i] == s.Pods[i]
}

// ForgetOthers deletes from m, which holds an entry for every pod of s (by
// UID), the entries of pods s does not hold. A snapshot's pods are unique,
// so a map no larger holds no other: the common case costs nothing.
func ForgetOthers[V any](m map[string]V, s *Snapshot) {
	if len(m) <= len(s.Pods) {
		return
	}
	seen := make(map[string]bool, len(s.Pods))
	for i := range s.Pods {
		seen[s.Pods[i].UID] = true
	}
	for uid := range m {
		if !seen[uid] {
			delete(m, uid)
		}
	}
}
