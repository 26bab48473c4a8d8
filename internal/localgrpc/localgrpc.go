// Package localgrpc holds what podlife's gRPC clients of the node's own unix
// sockets (the CRI runtime, the kubelet's Pods API) have in common.
package localgrpc

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Window is the static HTTP/2 flow-control window, per stream and per
// connection: a large listing arrives in a few round trips.
const Window = 1 << 20

// DialOptions are the options every local client dials with: no transport
// security (a unix socket's permissions are its security) and static flow
// control windows. gRPC's default dynamic window estimates the
// bandwidth-delay product with a PING (and a WINDOW_UPDATE before it) after
// each data frame that arrives once the last PING was answered: on a quiet
// event stream, that is every event, so each event cost a write, the
// server's answer and two more wake-ups. A unix socket has no
// bandwidth-delay product worth estimating.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStaticStreamWindowSize(Window),
		grpc.WithStaticConnWindowSize(Window),
	}
}
