// Package api holds the agent's HTTP API wire types, v1: what GET /api/v1/...
// answers, as JSON. The agent serves them; the CLI (internal/cli) and tests
// read them. Changing a field's name or meaning changes the API.
package api

import (
	"time"

	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/lifecycle"
)

// PodsResponse is GET /api/v1/pods.
type PodsResponse struct {
	Node        string                            `json:"node"`
	GeneratedAt time.Time                         `json:"generatedAt"`
	Sources     map[string]lifecycle.SourceHealth `json:"sources"`
	// BlackBox tells whether the agent keeps crash black boxes (GET
	// /api/v1/pods/{namespace}/{name}/logs serves them; 501 when not).
	BlackBox bool                 `json:"blackBox"`
	Pods     []*lifecycle.PodView `json:"pods"`
}

// PodResponse is GET /api/v1/pods/{namespace}/{name}: the view and its history.
type PodResponse struct {
	lifecycle.PodView
	History []Record `json:"history"`
}

// LogsResponse is GET /api/v1/pods/{namespace}/{name}/logs: the crash
// black box of the pod named so (of every incarnation of that name), each
// container's attempts oldest first. The query's container=NAME and
// attempt=N narrow it. Serving it needs what kubectl logs needs: get
// pods/log on the pod.
type LogsResponse struct {
	Node      string             `json:"node"`
	Namespace string             `json:"namespace"`
	Pod       string             `json:"pod"`
	Attempts  []journal.BlackBox `json:"attempts"`
}

// Record is a transition with its position in the agent's history: an item
// of GET /api/v1/transitions and a line of its watch (?watch=true).
type Record struct {
	Seq uint64 `json:"seq"`
	lifecycle.Transition
}

// WatchEnd is the last line of a watch stream that ended because its reader
// fell behind: how many transitions it missed, after which one.
type WatchEnd struct {
	Dropped uint64 `json:"dropped"`
	LastSeq uint64 `json:"lastSeq"`
	Error   string `json:"error"`
}

// JournalResponse is GET /api/v1/journal: what is not yet delivered upstream,
// and how the journal fares.
type JournalResponse struct {
	Stats   journal.Stats   `json:"stats"`
	Pending []journal.Entry `json:"pending"`
	Health  JournalHealth   `json:"health"`
}

// JournalHealth is how the agent's journal fares (GET /api/v1/journal's
// health, and the podlife_journal_* metrics).
type JournalHealth struct {
	// Up is whether the journal is open and its last write succeeded.
	Up bool `json:"up"`
	// Error is the last failure to open or write the journal, in one line.
	// It stays after a recovery, beside ErrorAt, for whoever looks later.
	Error   string    `json:"error,omitempty"`
	ErrorAt time.Time `json:"errorAt,omitzero"`
	// DownSince is when the journal last stopped taking writes (zero while up).
	DownSince time.Time `json:"downSince,omitzero"`
	// Unwritten is how many transitions are held in memory, in order, until
	// the journal takes them.
	Unwritten int `json:"unwritten"`
	// Lost counts transitions that were never journaled: the memory bound
	// was reached while the journal could not be written (oldest first), or
	// the agent stopped before it could be written again.
	Lost uint64 `json:"lost"`
	// Errors counts failed opens and writes.
	Errors uint64 `json:"errors"`
	// MovedAside lists journal files found unusable at open (corrupt, or of
	// a format this build does not know), where they are now and why.
	MovedAside []MovedAside `json:"movedAside,omitempty"`
}

// MovedAside is a journal file the agent could not use and moved aside.
type MovedAside struct {
	Path   string    `json:"path"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}
