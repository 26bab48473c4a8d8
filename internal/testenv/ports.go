package testenv

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// portFloor is the lowest port LoopbackPort draws.
const portFloor = 10000

// LoopbackPort is a 127.0.0.1 port that was free a moment ago, for a
// process the test starts that cannot be told to pick its own. It is drawn
// below the kernel's ephemeral range (ip_local_port_range), which no
// outgoing connection and no listener on port 0 is given: a port of that
// range can be taken by one of them before the process binds it (a
// kubelet's healthz port was, under make test: "bind: address already in
// use").
func LoopbackPort(t testing.TB) int {
	t.Helper()
	top := EphemeralPortLow()
	for range 200 {
		p := portFloor + rand.IntN(top-portFloor)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // taken: draw again
		}
		l.Close()
		return p
	}
	t.Fatalf("no free 127.0.0.1 port in [%d, %d) after 200 draws", portFloor, top)
	return 0
}

// EphemeralPortLow is the first port of the kernel's ephemeral range
// (net.ipv4.ip_local_port_range; 32768 where it cannot be read, or leaves
// too little room below it).
func EphemeralPortLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	low, err := strconv.Atoi(strings.Fields(string(b) + " x")[0])
	if err != nil || low < portFloor+1000 {
		return 32768
	}
	return low
}
