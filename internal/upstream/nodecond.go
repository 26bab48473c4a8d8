package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podlife/podlife/lifecycle"
)

// Node condition types podlife sets, like node-problem-detector does.
const (
	CondRuntimeUnreachable = "ContainerRuntimeUnreachable"
	CondKubeletUnreachable = "KubeletUnreachable"
)

// NodeConditions keeps podlife's conditions on this node's Node object,
// patching status.conditions only when a condition changes.
type NodeConditions struct {
	cs   NodeStatusPatcher
	node string
	log  *slog.Logger
	// Applied, when set, gives the Node's conditions as the API server last
	// showed them (false until known): a condition already there as desired
	// counts as applied, so an agent's restart (a DaemonSet rollout) patches
	// no Node whose conditions did not change. Sync waits up to AdoptWait
	// for them.
	Applied func() ([]corev1.NodeCondition, bool)

	mu       sync.Mutex
	last     map[string]corev1.NodeCondition // applied
	failedAt time.Time                       // of the last patch, when it failed
	settled  bool                            // the Node's copy adopted, or waited for in vain
	waitFrom time.Time                       // the first Sync that found the Node's copy unknown
}

// RetryAfter is how long after a failed patch Due says to patch again: the
// kubelet's own node status update period.
const RetryAfter = 10 * time.Second

// AdoptWait is how long Sync, from its first call, waits for the Node's
// copy of the conditions (Applied) before it patches without it: an agent
// that starts syncs before its Node informer has listed, and a Node it may
// not list must not keep its conditions off for good.
const AdoptWait = RetryAfter

// Due reports whether the last patch failed RetryAfter ago or more, or
// whether Sync still waits for the Node's copy: its caller then syncs again
// without waiting for another change (client-go retries no PATCH).
func (n *NodeConditions) Due(now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.Applied != nil && !n.settled || !n.failedAt.IsZero() && !now.Before(n.failedAt.Add(RetryAfter))
}

// NewNodeConditions builds the condition keeper for node; cs is usually a
// *Client.
func NewNodeConditions(cs NodeStatusPatcher, node string, log *slog.Logger) *NodeConditions {
	return &NodeConditions{cs: cs, node: node, log: log, last: map[string]corev1.NodeCondition{}}
}

// adopt takes the Node's own copy of the conditions as applied, once. It
// reports false while Sync should still wait for that copy. Called with mu
// held.
func (n *NodeConditions) adopt(now time.Time) bool {
	if n.Applied == nil || n.settled {
		return true
	}
	conds, ok := n.Applied()
	if !ok {
		if n.waitFrom.IsZero() {
			n.waitFrom = now
		}
		if now.Before(n.waitFrom.Add(AdoptWait)) {
			return false
		}
		n.log.Warn("the Node's conditions are still unknown: patching without them", "waited", AdoptWait.String())
	}
	n.settled = true
	for _, c := range conds {
		t := string(c.Type)
		if _, done := n.last[t]; !done && (t == CondRuntimeUnreachable || t == CondKubeletUnreachable) {
			n.last[t] = c
		}
	}
	return true
}

// Desired turns source health into podlife's node conditions.
func Desired(sources map[string]lifecycle.SourceHealth, now time.Time) []corev1.NodeCondition {
	mk := func(typ, source string, h lifecycle.SourceHealth) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: corev1.NodeConditionType(typ), Status: corev1.ConditionFalse,
			Reason: typ[:len(typ)-len("Unreachable")] + "Reachable", Message: "podlife reaches the " + source,
			LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}
		if h.Configured && !h.Up {
			c.Status, c.Reason = corev1.ConditionTrue, typ
			c.Message = truncate(fmt.Sprintf("podlife cannot reach the %s: %s", source, h.LastError), 1024)
		}
		return c
	}
	return []corev1.NodeCondition{
		mk(CondRuntimeUnreachable, "container runtime", sources[lifecycle.SourceRuntime]),
		mk(CondKubeletUnreachable, "kubelet", sources[lifecycle.SourceKubelet]),
	}
}

// Sync patches the conditions that changed (status or reason) since the last
// successful patch, or since the Node showed them (Applied).
func (n *NodeConditions) Sync(ctx context.Context, sources map[string]lifecycle.SourceHealth, now time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.adopt(now) {
		return nil
	}
	var changed []corev1.NodeCondition
	for _, c := range Desired(sources, now) {
		if old, ok := n.last[string(c.Type)]; ok && old.Status == c.Status && old.Reason == c.Reason {
			continue
		}
		changed = append(changed, c)
	}
	if len(changed) == 0 {
		n.failedAt = time.Time{} // back to what was applied: nothing left to retry
		return nil
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": changed}})
	if err != nil {
		return fmt.Errorf("encode node condition patch: %w", err)
	}
	if err := n.cs.PatchNodeStatus(ctx, n.node, patch); err != nil {
		n.failedAt = now
		return fmt.Errorf("patch node %s conditions: %w", n.node, err)
	}
	n.failedAt = time.Time{}
	for _, c := range changed {
		n.last[string(c.Type)] = c
		n.log.Info("node condition set", "type", c.Type, "status", c.Status, "reason", c.Reason)
	}
	return nil
}
