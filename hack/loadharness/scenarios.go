package main

import (
	"cmp"
	"slices"
	"time"
)

// matrix is the list of scenarios a run measures, sorted pods → churn →
// mode (sortScenarios). By default: 110, 250 and 500 pods × idle, 10 and 100
// changes/s × the runtime streamed and polled, the kubelet read through its
// Pods API; and the kubelet polled on /pods (before Kubernetes 1.37) at 110
// and 250 pods, idle and 10/s, the runtime streamed. quick keeps only 250
// pods; blackBox and compare replace the matrix with their own.
func matrix(quick, blackBox, compare bool) []scenario {
	var scs []scenario
	switch {
	case blackBox:
		for _, churn := range []float64{0, 10} {
			scs = append(scs, scenario{250, churn, true, podsAPI, boxOff}, scenario{250, churn, true, podsAPI, boxOn})
		}
	case compare:
		for _, pods := range []int{110, 250} {
			for _, churn := range []float64{0, 10} {
				scs = append(scs, scenario{pods, churn, true, podsAPI, ""}, scenario{pods, churn, true, podsHTTP, ""})
			}
		}
	default:
		for _, pods := range []int{110, 250, 500} {
			if quick && pods != 250 {
				continue
			}
			for _, churn := range []float64{0, 10, 100} {
				scs = append(scs, scenario{pods, churn, true, podsAPI, ""}, scenario{pods, churn, false, podsAPI, ""})
			}
			if pods <= 250 {
				scs = append(scs, scenario{pods, 0, true, podsHTTP, ""}, scenario{pods, 10, true, podsHTTP, ""})
			}
		}
	}
	sortScenarios(scs)
	return scs
}

// sortScenarios orders scenarios as the report's rows: by pods, then churn,
// then mode (the runtime streamed before polled, the kubelet's Pods API
// before /pods, the black box off before on).
func sortScenarios(scs []scenario) {
	rank := func(sc scenario) int {
		r := 0
		if !sc.stream {
			r += 4
		}
		if sc.kubelet != podsAPI {
			r += 2
		}
		if sc.box == boxOn {
			r++
		}
		return r
	}
	slices.SortStableFunc(scs, func(a, b scenario) int {
		return cmp.Or(cmp.Compare(a.pods, b.pods), cmp.Compare(a.churn, b.churn), cmp.Compare(rank(a), rank(b)))
	})
}

// runOverhead is what one run of a scenario takes beyond its measurement
// window: starting simnode and the agent, readiness, the 3 s warm-up, ten
// /metrics and /api/v1/pods requests 200 ms apart, stopping.
const runOverhead = 7 * time.Second

// estimate is how long measuring n scenarios runs times each takes.
func estimate(n, runs int, window time.Duration) time.Duration {
	return time.Duration(n*runs) * (window + runOverhead)
}
