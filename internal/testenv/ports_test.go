package testenv

import (
	"net"
	"strconv"
	"testing"
)

// LoopbackPort draws below the ephemeral range, where no connection's local
// port and no listener on port 0 can take it first, and the port binds.
func TestLoopbackPortBelowTheEphemeralRange(t *testing.T) {
	low := EphemeralPortLow()
	for range 20 {
		p := LoopbackPort(t)
		if p < portFloor || p >= low {
			t.Fatalf("port %d, want in [%d, %d)", p, portFloor, low)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d does not bind: %v", p, err)
		}
		l.Close()
	}
}
