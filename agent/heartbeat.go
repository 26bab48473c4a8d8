package agent

import (
	"context"
	"time"

	"github.com/podlife/podlife/internal/upstream"
	"github.com/podlife/podlife/lifecycle"
)

// heartbeatCheck is how often the heartbeat looks whether its Lease is due
// (upstream.Heartbeat writes only every Interval or on a change).
const heartbeatCheck = 10 * time.Second

// heartbeat keeps the node's heartbeat Lease while the API server answers:
// what `kubectl podlife nodes` shows of this node.
func (a *Agent) heartbeat(ctx context.Context) {
	u := a.opts.Upstream
	t := time.NewTicker(heartbeatCheck)
	defer t.Stop()
	var said string
	for {
		if s, ok := a.nodeSummary(); ok && u.View.Health().Up {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := u.Heartbeat.Sync(cctx, s, a.opts.Now())
			cancel()
			switch {
			case err != nil && err.Error() != said:
				a.opts.Log.Warn("heartbeat lease not written", "err", err.Error())
				said = err.Error()
			case err == nil:
				said = ""
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// nodeSummary sums up the last snapshot for the heartbeat Lease; false
// before the first.
func (a *Agent) nodeSummary() (upstream.NodeSummary, bool) {
	snap := a.Snapshot()
	if snap == nil {
		return upstream.NodeSummary{}, false
	}
	var s upstream.NodeSummary
	for i := range snap.Pods {
		switch snap.Pods[i].Stage {
		case lifecycle.StageFailing:
			s.Failing++
		case lifecycle.StageUnknown:
			s.Unknown++
		}
	}
	if h := snap.Sources[lifecycle.SourceKubeletLink]; h.Configured {
		s.KubeletLink = "up"
		if !h.Up {
			s.KubeletLink = "cut-off"
		}
	}
	if r := a.opts.Upstream.Reporter; r != nil {
		st := r.Stats()
		s.LastPartition, s.Partition = st.LastPartition, st.LastPartitionSummary
	}
	return s, true
}
