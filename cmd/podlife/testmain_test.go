package main

import (
	"os"
	"testing"

	"github.com/podlife/podlife/internal/testenv"
)

// TestMain runs the package's tests in a network namespace of their own, so
// that the one-node cluster's node address is reachable by its API server
// (the pod proxy of TestDaemonSet) and by nothing else.
func TestMain(m *testing.M) { os.Exit(testenv.MainInNetns(m)) }
