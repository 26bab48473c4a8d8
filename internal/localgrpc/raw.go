package localgrpc

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec marshals requests as protobuf and hands a response over as its
// undecoded bytes, into the caller's *[]byte: into its array when that is
// large enough, so that a caller listing again and again reuses one buffer.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	out, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot decode into %T", v)
	}
	n := data.Len()
	if cap(*out) < n {
		*out = make([]byte, n)
	}
	*out = (*out)[:n]
	data.CopyTo(*out)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// InvokeRaw calls a unary method and leaves its answer undecoded in *answer,
// reusing the array *answer holds when it is large enough: the caller reads
// what it needs straight from the wire (Items) and decodes the rest on
// demand. Nothing may keep a slice of *answer past the next call with it.
func InvokeRaw(ctx context.Context, conn grpc.ClientConnInterface, method string, req any, answer *[]byte) error {
	return conn.Invoke(ctx, method, req, answer, grpc.ForceCodecV2(rawCodec{}))
}

// Items calls f with each length-delimited value of field num of the
// protobuf message b (a repeated message or bytes field), in order, skipping
// every other field. A malformed message is a protowire error; f's error is
// returned as it is.
func Items(b []byte, num protowire.Number, f func(item []byte) error) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		if n > protowire.MaxValidNumber { // protowire takes MessageSet's larger numbers; protobuf messages do not
			return fmt.Errorf("field number %d out of range", n)
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			item, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			if err := f(item); err != nil {
				return err
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(n, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
	}
	return nil
}
