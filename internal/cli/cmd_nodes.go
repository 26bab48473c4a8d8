package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podlife/podlife/internal/upstream"
)

// NodeRow is one node of `podlife nodes`: what the API server alone tells of
// it and of its agent (the Node's conditions, the agent's heartbeat Lease).
type NodeRow struct {
	Node string `json:"node"`
	Zone string `json:"zone,omitempty"`
	// Agent: "reports", "silent" (its Lease expired), or "none" (no Lease).
	Agent        string    `json:"agent"`
	AgentRenewed time.Time `json:"agentRenewed,omitzero"`
	// Ready is the Node's Ready condition: True, False or Unknown.
	Ready string `json:"ready"`
	// KubeletLink is the kubelet's link to the API server as the agent
	// sees it: up, cut-off, or "" (unknown).
	KubeletLink string `json:"kubeletLink,omitempty"`
	// Unreachable names podlife's node conditions that are True.
	Unreachable      []string  `json:"unreachable,omitempty"`
	Failing          int       `json:"podsFailing"`
	Unknown          int       `json:"podsUnknown"`
	LastPartition    time.Time `json:"lastPartition,omitzero"`
	PartitionSummary string    `json:"lastPartitionSummary,omitempty"`
	// Trouble orders the rows: 5 a silent agent, 4 the kubelet's link down
	// or the Node not Ready, 3 a podlife condition True, 2 pods failing or
	// unknown, 1 a partition within the last hour, 0 none.
	Trouble int `json:"trouble"`
}

// NodeRows joins the Nodes and the agents' heartbeat Leases into rows,
// most trouble first.
func NodeRows(nodes []corev1.Node, leases []coordinationv1.Lease, now time.Time) []NodeRow {
	byNode := map[string]*coordinationv1.Lease{}
	for i := range leases {
		if n, ok := strings.CutPrefix(leases[i].Name, upstream.HeartbeatLeasePrefix); ok {
			byNode[n] = &leases[i]
		}
	}
	rows := make([]NodeRow, 0, len(nodes))
	for i := range nodes {
		rows = append(rows, nodeRow(&nodes[i], byNode[nodes[i].Name], now))
	}
	slices.SortFunc(rows, func(a, b NodeRow) int {
		return cmp.Or(b.Trouble-a.Trouble, (b.Failing+b.Unknown)-(a.Failing+a.Unknown), strings.Compare(a.Node, b.Node))
	})
	return rows
}

func nodeRow(n *corev1.Node, l *coordinationv1.Lease, now time.Time) NodeRow {
	r := NodeRow{Node: n.Name, Zone: n.Labels[corev1.LabelTopologyZone], Agent: "none", Ready: "Unknown"}
	for _, c := range n.Status.Conditions {
		switch string(c.Type) {
		case string(corev1.NodeReady):
			r.Ready = string(c.Status)
		case upstream.CondRuntimeUnreachable, upstream.CondKubeletUnreachable:
			if c.Status == corev1.ConditionTrue {
				r.Unreachable = append(r.Unreachable, string(c.Type))
			}
		}
	}
	if l != nil {
		r.Agent = "silent"
		if l.Spec.RenewTime != nil {
			r.AgentRenewed = l.Spec.RenewTime.Time
			if d := l.Spec.LeaseDurationSeconds; d != nil && now.Sub(r.AgentRenewed) <= time.Duration(*d)*time.Second {
				r.Agent = "reports"
			}
		}
		a := l.Annotations
		r.Failing, _ = strconv.Atoi(a[upstream.AnnotationPodsFailing])
		r.Unknown, _ = strconv.Atoi(a[upstream.AnnotationPodsUnknown])
		r.KubeletLink = a[upstream.AnnotationKubeletLink]
		r.LastPartition, _ = time.Parse(time.RFC3339, a[upstream.AnnotationLastPartition])
		r.PartitionSummary = a[upstream.AnnotationLastPartitionSummary]
	}
	switch {
	case r.Agent != "reports":
		r.Trouble = 5
	case r.KubeletLink == "cut-off" || r.Ready != "True":
		r.Trouble = 4
	case len(r.Unreachable) > 0:
		r.Trouble = 3
	case r.Failing+r.Unknown > 0:
		r.Trouble = 2
	case !r.LastPartition.IsZero() && now.Sub(r.LastPartition) < time.Hour:
		r.Trouble = 1
	}
	return r
}

// PrintNodes writes the rows as a table.
func PrintNodes(w io.Writer, rows []NodeRow, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tZONE\tAGENT\tREADY\tKUBELET LINK\tUNREACHABLE\tFAILING\tUNKNOWN\tLAST PARTITION")
	dash := func(s string) string { return cmp.Or(s, "-") }
	for _, r := range rows {
		agent := r.Agent
		if !r.AgentRenewed.IsZero() {
			agent += " (" + Age(now.Sub(r.AgentRenewed)) + " ago)"
		}
		part := "-"
		if !r.LastPartition.IsZero() {
			part = Age(now.Sub(r.LastPartition)) + " ago: " + r.PartitionSummary
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Node, dash(r.Zone), agent, r.Ready, dash(r.KubeletLink),
			dash(strings.Join(r.Unreachable, ",")), r.Failing, r.Unknown, part)
	}
	tw.Flush()
}

// RunNodes is podlife nodes: the fleet at a glance from the API server
// alone, in two paginated lists (the Nodes, the agents' heartbeat Leases),
// so that it answers at 5,000 nodes without asking any agent.
func RunNodes(ctx context.Context, args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("nodes", pflag.ContinueOnError)
	var remote Remote
	remoteFlags(fs, &remote)
	output := fs.StringP("output", "o", "", "json or yaml")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 || remote.Node != "" {
		return fmt.Errorf("%w: nodes lists every node (no arguments, no --node)", ErrUsage)
	}
	api, err := newAPIServer(remote)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var nodes []corev1.Node
	if err := listAll(ctx, api, "/api/v1/nodes", func(b *slimNodeList) (string, int) {
		for _, n := range b.Items {
			nodes = append(nodes, corev1.Node{ObjectMeta: n.Metadata, Status: corev1.NodeStatus{Conditions: n.Status.Conditions}})
		}
		return b.Metadata.Continue, len(b.Items)
	}); err != nil {
		return fmt.Errorf("listing the nodes: %w", err)
	}
	var leases []coordinationv1.Lease
	path := "/apis/coordination.k8s.io/v1/namespaces/" + url.PathEscape(remote.Namespace) + "/leases"
	if err := listAll(ctx, api, path, func(b *coordinationv1.LeaseList) (string, int) {
		leases = append(leases, b.Items...)
		return b.Continue, len(b.Items)
	}); err != nil {
		return fmt.Errorf("listing the agents' heartbeat Leases in %s (--agent-namespace): %w", remote.Namespace, err)
	}
	now := time.Now()
	rows := NodeRows(nodes, leases, now)
	if *output != "" {
		return Output(stdout, *output, rows)
	}
	PrintNodes(stdout, rows, now)
	return nil
}

// slimNodeList is what nodes reads of a NodeList: a Node's images, addresses
// and capacity are most of its bytes, and left undecoded.
type slimNodeList struct {
	Metadata metav1.ListMeta `json:"metadata"`
	Items    []struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
		Status   struct {
			Conditions []corev1.NodeCondition `json:"conditions"`
		} `json:"status"`
	} `json:"items"`
}

// listAll lists path in pages of 500 (kubectl's --chunk-size: 5,000 Nodes
// are ten pages), handing each to page, which returns the continue token.
func listAll[L any](ctx context.Context, api apiServer, path string, page func(*L) (string, int)) error {
	cont := ""
	for {
		q := url.Values{"limit": {"500"}}
		if cont != "" {
			q.Set("continue", cont)
		}
		var l L
		if err := api.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &l); err != nil {
			return err
		}
		if cont, _ = page(&l); cont == "" {
			return nil
		}
	}
}
