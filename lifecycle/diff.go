package lifecycle

// Diff returns the transitions from prev to cur, ordered by pod key, then
// container, then kind. A nil prev is an empty node.
func Diff(prev, cur *Snapshot) []Transition {
	return nil
}
