package lifecycle

import (
	"fmt"
	"time"
)

// StageClock remembers since when each pod has been in its stage, to find
// pods stuck in a transient stage. It is not safe for concurrent use.
type StageClock struct {
	pods map[string]*stageEntry // by pod UID
}

type stageEntry struct {
	stage    Stage
	since    time.Time
	reported bool
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
	if c.pods == nil {
		c.pods = map[string]*stageEntry{}
	}
	for uid, s := range stages {
		e := c.pods[uid]
		switch {
		case e == nil:
			c.pods[uid] = &stageEntry{stage: s.Stage, since: s.Since, reported: s.Reported}
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
// for longer than threshold — once per stay in a stage.
func (c *StageClock) Stuck(s *Snapshot, threshold time.Duration) []Transition {
	if c.pods == nil {
		c.pods = map[string]*stageEntry{}
	}
	var out []Transition
	for i := range s.Pods {
		p := s.Pods[i]
		e := c.pods[p.UID]
		if e == nil || e.stage != p.Stage {
			e = &stageEntry{stage: p.Stage, since: s.At}
			c.pods[p.UID] = e
		}
		transient := p.Stage != StageServing && p.Stage != StageTerminated
		if threshold <= 0 || e.reported || !transient || s.At.Sub(e.since) < threshold {
			continue
		}
		e.reported = true
		out = append(out, Transition{Kind: TransitionStageStuck, Namespace: p.Namespace, Pod: p.Name, UID: p.UID,
			From: string(p.Stage), To: string(p.Stage), Reason: p.StageReason, ObservedAt: s.At, HappenedAt: e.since,
			Detail: fmt.Sprintf("in stage %s for %s (threshold %s)", p.Stage, s.At.Sub(e.since).Round(time.Second), threshold)})
	}
	ForgetOthers(c.pods, s)
	return out
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
