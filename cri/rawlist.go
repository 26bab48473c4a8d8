package cri

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// rawCodec marshals requests as protobuf and hands a response over as its
// undecoded bytes (into a *[]byte), so that a relist can skip what it knows.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	out, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot decode into %T", v)
	}
	*out = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// Field numbers on the wire: both list answers hold their items in field 1,
// and each item has its ID in field 1; the state is field 6 of a Container
// and field 3 of a PodSandbox.
const (
	fieldItems          = 1
	fieldID             = 1
	fieldContainerState = 6
	fieldSandboxState   = 3
)

// listed is one item of a list answer: its ID and state read straight from
// the wire, and its encoding for a full decode on demand.
type listed struct {
	id    []byte
	state int32
	raw   []byte
}

// listRaw calls a list method and returns its items undecoded but for ID and
// state: most of a relist's items are known and unchanged, and decoding their
// labels and annotations again each time was most of a relist's cost.
func listRaw(ctx context.Context, conn grpc.ClientConnInterface, method string, req any, stateField protowire.Number) ([]listed, error) {
	var raw []byte
	if err := conn.Invoke(ctx, method, req, &raw, grpc.ForceCodecV2(rawCodec{})); err != nil {
		return nil, err
	}
	return splitList(raw, stateField)
}

// listContainers lists the runtime's containers (see listRaw).
func listContainers(ctx context.Context, conn grpc.ClientConnInterface) ([]listed, error) {
	return listRaw(ctx, conn, runtimeapi.RuntimeService_ListContainers_FullMethodName, &runtimeapi.ListContainersRequest{}, fieldContainerState)
}

// listSandboxes lists the runtime's pod sandboxes (see listRaw).
func listSandboxes(ctx context.Context, conn grpc.ClientConnInterface) ([]listed, error) {
	return listRaw(ctx, conn, runtimeapi.RuntimeService_ListPodSandbox_FullMethodName, &runtimeapi.ListPodSandboxRequest{}, fieldSandboxState)
}

// decode decodes the item in full into m.
func (l listed) decode(m proto.Message) error {
	if err := proto.Unmarshal(l.raw, m); err != nil {
		return fmt.Errorf("item %q: %w", l.id, err)
	}
	return nil
}

// splitList reads a list answer's items.
func splitList(b []byte, stateField protowire.Number) ([]listed, error) {
	var out []listed
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("list answer: %w", protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber { // protowire takes MessageSet's larger numbers; protobuf messages do not
			return nil, fmt.Errorf("list answer: field number %d out of range", num)
		}
		b = b[n:]
		if num == fieldItems && typ == protowire.BytesType {
			msg, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, fmt.Errorf("list answer: %w", protowire.ParseError(m))
			}
			item, err := scanItem(msg, stateField)
			if err != nil {
				return nil, err
			}
			out = append(out, item)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, fmt.Errorf("list answer: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return out, nil
}

// scanItem reads an item's ID and state (the last occurrence wins, as in
// protobuf decoding).
func scanItem(msg []byte, stateField protowire.Number) (listed, error) {
	l := listed{raw: msg}
	for b := msg; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return l, fmt.Errorf("list answer: item: %w", protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			return l, fmt.Errorf("list answer: item: field number %d out of range", num)
		}
		b = b[n:]
		var m int
		switch {
		case num == fieldID && typ == protowire.BytesType:
			l.id, m = protowire.ConsumeBytes(b)
		case num == stateField && typ == protowire.VarintType:
			var v uint64
			v, m = protowire.ConsumeVarint(b)
			l.state = int32(v)
		default:
			m = protowire.ConsumeFieldValue(num, typ, b)
		}
		if m < 0 {
			return l, fmt.Errorf("list answer: item: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return l, nil
}
