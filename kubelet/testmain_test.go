package kubelet

import (
	"os"
	"testing"

	"github.com/podlife/podlife/internal/testenv"
)

// TestMain runs the package's tests in a network namespace of their own
// (testenv.MainInNetns): the real kubelet's node address is used there only.
func TestMain(m *testing.M) { os.Exit(testenv.MainInNetns(m)) }
