package main

import (
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestSlope(t *testing.T) {
	tests := []struct {
		name   string
		xs, ys []float64
		want   float64
	}{
		{"flat", []float64{0, 1, 2, 3}, []float64{40, 40, 40, 40}, 0},
		{"growing 0.5 per minute", []float64{5, 6, 7, 8}, []float64{40, 40.5, 41, 41.5}, 0.5},
		{"shrinking", []float64{0, 2}, []float64{50, 49}, -0.5},
		{"noise around flat", []float64{0, 1, 2, 3, 4, 5}, []float64{40, 42, 40, 42, 40, 42}, 6.0 / 35},
		{"one sample", []float64{1}, []float64{40}, 0},
		{"no spread in time", []float64{1, 1}, []float64{40, 41}, 0},
	}
	for _, tc := range tests {
		if got := slope(tc.xs, tc.ys); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: slope %v, want %v", tc.name, got, tc.want)
		}
	}
}

// trend fits only the samples of the second half, in MiB per minute.
func TestTrendSecondHalf(t *testing.T) {
	var ss []sample
	for i := range 120 {
		at := time.Duration(i) * 5 * time.Second
		rss := 30 + float64(i) // the first half grows (start-up)...
		if at >= 5*time.Minute {
			rss = 90 + 0.1*at.Minutes() // ...the second grows 0.1 MiB/min
		}
		ss = append(ss, sample{at: at, rss: rss})
	}
	got, n := trend(ss, 5*time.Minute, func(s sample) (float64, bool) { return s.rss, true })
	if n != 60 || math.Abs(got-0.1) > 1e-9 {
		t.Fatalf("slope %v over %d samples, want 0.1 over 60", got, n)
	}
}

// mappingRSS counts the resident pages of a file's mapping, and only its.
func TestMappingRSS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapped")
	if err := os.WriteFile(path, make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, 8<<20, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	var sum byte
	for i := 0; i < 4<<20; i += 4096 { // touch the first half
		sum += m[i]
	}
	got, err := mappingRSS(os.Getpid(), path)
	if err != nil || got < 3.9 || got > 4.1 {
		t.Fatalf("%.2f MiB resident, want 4 (%v, %d)", got, err, sum)
	}
	if other, _ := mappingRSS(os.Getpid(), path+".other"); other != 0 {
		t.Fatalf("%.2f MiB for a file not mapped", other)
	}
}
