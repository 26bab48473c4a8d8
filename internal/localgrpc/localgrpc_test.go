package localgrpc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// recorder keeps every byte a client wrote to its connection.
type recorder struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.out.Write(b)
	r.mu.Unlock()
	return r.Conn.Write(b)
}

// pings counts the PING frames (not acks) the client sent.
func (r *recorder) pings(t *testing.T) int {
	t.Helper()
	r.mu.Lock()
	b := bytes.Clone(r.out.Bytes())
	r.mu.Unlock()
	b = bytes.TrimPrefix(b, []byte(http2.ClientPreface))
	fr := http2.NewFramer(nil, bytes.NewReader(b))
	n := 0
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return n
		}
		if err != nil {
			t.Fatalf("the client's frames do not parse: %v", err)
		}
		if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
			n++
		}
	}
}

// serve starts a gRPC server with what register registers on a unix socket
// until the test ends, and returns the socket's path.
func serve(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return sock
}

// calls makes n+1 unary calls to a local server on a unix socket through a
// client dialled with opts and returns what the client wrote. A PING the
// client queues on reading a response's DATA frame is queued before that
// call ends, so it is written before the next call's HEADERS: after the
// last call, every PING of the first n has been written.
func calls(t *testing.T, n int, opts ...grpc.DialOption) *recorder {
	t.Helper()
	sock := serve(t, func(srv *grpc.Server) { healthpb.RegisterHealthServer(srv, health.NewServer()) })
	rec := &recorder{}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "unix", sock)
		if err != nil {
			return nil, err
		}
		rec.Conn = c
		return rec, nil
	}
	conn, err := grpc.NewClient("passthrough:///local", append(opts, grpc.WithContextDialer(dial))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	for i := 0; i <= n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	return rec
}

// A local client sends no bandwidth-delay PINGs: with gRPC's default
// dynamic window, each response read once the last PING was answered costs
// a PING, a WINDOW_UPDATE and the server's answer (grpc-go
// internal/transport http2_client.go handleData, bdp_estimator.go).
func TestNoBDPPings(t *testing.T) {
	if n := calls(t, 10, DialOptions()...).pings(t); n != 0 {
		t.Errorf("the local client sent %d PINGs over 10 calls, want 0", n)
	}
	// The control: the same calls with gRPC's default window do ping, so
	// the count above can see a PING.
	if n := calls(t, 10, grpc.WithTransportCredentials(insecure.NewCredentials())).pings(t); n == 0 {
		t.Error("gRPC's default window sent no PING over 10 calls: the count sees none")
	}
}
