package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// row is a scenario as the report's row names it.
func row(sc scenario) string {
	mode := "stream"
	if !sc.stream {
		mode = "poll"
	}
	return fmt.Sprintf("%d %g %s %s %s", sc.pods, sc.churn, mode, sc.kubelet, sc.box)
}

func rows(scs []scenario) []string {
	var out []string
	for _, sc := range scs {
		out = append(out, strings.TrimSpace(row(sc)))
	}
	return out
}

// The matrix: 110/250/500 pods × idle, 10, 100 changes/s × stream and poll
// over the Pods API, and /pods polled at 110 and 250 pods, idle and 10/s;
// one row per scenario, sorted pods → churn → mode.
func TestMatrix(t *testing.T) {
	var want []string
	for _, pods := range []int{110, 250, 500} {
		for _, churn := range []int{0, 10, 100} {
			want = append(want, fmt.Sprintf("%d %d stream pods-api", pods, churn))
			if pods <= 250 && churn <= 10 {
				want = append(want, fmt.Sprintf("%d %d stream pods-http", pods, churn))
			}
			want = append(want, fmt.Sprintf("%d %d poll pods-api", pods, churn))
		}
	}
	if got := rows(matrix(false, false, false)); !slices.Equal(got, want) {
		t.Errorf("matrix:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var quick []string
	for _, w := range want {
		if strings.HasPrefix(w, "250 ") {
			quick = append(quick, w)
		}
	}
	if got := rows(matrix(true, false, false)); !slices.Equal(got, quick) {
		t.Errorf("-quick:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(quick, "\n"))
	}
	box := []string{"250 0 stream pods-api " + boxOff, "250 0 stream pods-api " + boxOn, "250 10 stream pods-api " + boxOff, "250 10 stream pods-api " + boxOn}
	if got := rows(matrix(false, true, false)); !slices.Equal(got, box) {
		t.Errorf("-blackbox:\n%s", strings.Join(got, "\n"))
	}
	if got := matrix(false, false, true); len(got) != 8 || got[0].kubelet != podsAPI || got[1].kubelet != podsHTTP || got[7].pods != 250 {
		t.Errorf("-kubelet-compare:\n%s", strings.Join(rows(got), "\n"))
	}
}

// The estimate counts every run of every scenario, window and overhead.
func TestEstimate(t *testing.T) {
	if got, want := estimate(22, 5, 10*time.Second), 110*(10*time.Second+runOverhead); got != want {
		t.Errorf("estimate(22, 5, 10s) = %s, want %s", got, want)
	}
}
