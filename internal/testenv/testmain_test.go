package testenv

import (
	"os"
	"testing"
)

// TestMain runs the package's tests in a network namespace of their own
// (MainInNetns): the one-node cluster's node address is used there only.
func TestMain(m *testing.M) { os.Exit(MainInNetns(m)) }
