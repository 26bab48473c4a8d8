package localgrpc

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// echoServer serves one unary method, /test.Echo/Echo, that answers the
// BytesValue it was sent, on a unix socket; it returns a client of it.
func echoServer(t *testing.T) *grpc.ClientConn {
	t.Helper()
	sock := serve(t, func(srv *grpc.Server) {
		srv.RegisterService(&grpc.ServiceDesc{ServiceName: "test.Echo", HandlerType: (*any)(nil),
			Methods: []grpc.MethodDesc{{MethodName: "Echo", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.BytesValue)
				return in, dec(in)
			}}}}, struct{}{})
	})
	conn, err := grpc.NewClient("unix://"+sock, DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// InvokeRaw leaves the answer undecoded, in the caller's array while it is
// large enough and in a new one when it is not.
func TestInvokeRaw(t *testing.T) {
	conn := echoServer(t)
	var answer []byte
	echo := func(n int) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sent := bytes.Repeat([]byte{byte(n)}, n)
		if err := InvokeRaw(ctx, conn, "/test.Echo/Echo", wrapperspb.Bytes(sent), &answer); err != nil {
			t.Fatal(err)
		}
		var got [][]byte
		if err := Items(answer, 1, func(v []byte) error { got = append(got, v); return nil }); err != nil || len(got) != 1 || !bytes.Equal(got[0], sent) {
			t.Fatalf("echo of %d bytes: the answer %x holds %d values (%v), want the %d bytes sent", n, answer, len(got), err, n)
		}
		return answer
	}
	big := echo(1000)
	small := echo(10)
	if &small[0] != &big[0] {
		t.Error("a smaller answer was not received into the caller's array")
	}
	if bigger := echo(5000); &bigger[0] == &big[0] || cap(bigger) < 5000 {
		t.Error("a larger answer was received into an array too small for it")
	}
}

// Items yields field num's length-delimited values in order and skips the
// rest, another type under the same number too; its own errors are
// protowire's, f's are returned as they are.
func TestItems(t *testing.T) {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "a")
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	b = protowire.AppendTag(b, 1, protowire.VarintType) // not a value of the repeated field
	b = protowire.AppendVarint(b, 8)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, "x")
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "")
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "c")
	var got []string
	if err := Items(b, 1, func(v []byte) error { got = append(got, string(v)); return nil }); err != nil || strings.Join(got, ",") != "a,,c" {
		t.Fatalf("Items: %q, %v; want a, \"\", c", got, err)
	}
	stop := errors.New("stop")
	if err := Items(b, 1, func([]byte) error { return stop }); err != stop {
		t.Errorf("f's error came back as %v", err)
	}
	for name, in := range map[string][]byte{
		"truncated value": b[:len(b)-1],
		"truncated tag":   {0xff},
		"http":            []byte("HTTP/1.1 400 Bad Request\r\n"),
		"field 0":         {0x02, 0x00},
	} {
		if err := Items(in, 1, func([]byte) error { return nil }); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
