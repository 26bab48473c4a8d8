package lifecycle

// Reported remembers the container transitions with a time of their own (a
// start, an exit, a restart: HappenedAt set) already reported, so that a
// source that reports one again is not news twice. A kubelet that restarts,
// or whose Pods API stream is replaced by /pods, lists its containers afresh
// for a moment without their statuses, then with the same start times: the
// view goes on, but "running since T" happened once. The zero value is ready;
// it keeps the last ReportedLimit.
type Reported struct {
	keys  map[reportedKey]struct{}
	order []reportedKey
}

// ReportedLimit is how many reported transitions Reported remembers.
const ReportedLimit = 4096

type reportedKey struct {
	kind                   TransitionKind
	source, uid, container string
	to                     string
	happenedAt             int64
}

// Fresh returns trs without the container transitions already reported, and
// remembers those it returns.
func (r *Reported) Fresh(trs []Transition) []Transition {
	if r.keys == nil {
		r.keys = map[reportedKey]struct{}{}
	}
	out := trs[:0:0]
	for _, t := range trs {
		if t.HappenedAt.IsZero() || (t.Kind != TransitionContainerState && t.Kind != TransitionContainerRestarted) {
			out = append(out, t)
			continue
		}
		k := reportedKey{t.Kind, t.Source, t.UID, t.Container, t.To, t.HappenedAt.UnixNano()}
		if _, ok := r.keys[k]; ok {
			continue
		}
		r.keys[k] = struct{}{}
		r.order = append(r.order, k)
		if len(r.order) > ReportedLimit {
			delete(r.keys, r.order[0])
			r.order = r.order[1:]
		}
		out = append(out, t)
	}
	return out
}
