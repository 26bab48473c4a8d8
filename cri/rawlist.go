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

// Field numbers of runtime.v1.ListContainersResponse and Container.
const (
	fieldContainers     = 1 // ListContainersResponse.containers
	fieldContainerID    = 1 // Container.id
	fieldContainerState = 6 // Container.state
)

// listedContainer is one entry of a ListContainers answer: its ID and state
// read straight from the wire, and its encoding for a full decode on demand.
type listedContainer struct {
	id    []byte
	state runtimeapi.ContainerState
	raw   []byte
}

// decode decodes the entry in full.
func (l listedContainer) decode() (*runtimeapi.Container, error) {
	c := &runtimeapi.Container{}
	if err := proto.Unmarshal(l.raw, c); err != nil {
		return nil, fmt.Errorf("container %q: %w", l.id, err)
	}
	return c, nil
}

// listContainers calls ListContainers and returns its entries undecoded but
// for ID and state: most of a relist's containers are known and unchanged,
// and decoding their labels again each time was most of a relist's cost.
func listContainers(ctx context.Context, conn grpc.ClientConnInterface) ([]listedContainer, error) {
	var raw []byte
	err := conn.Invoke(ctx, runtimeapi.RuntimeService_ListContainers_FullMethodName, &runtimeapi.ListContainersRequest{}, &raw,
		grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		return nil, err
	}
	return splitContainers(raw)
}

// splitContainers reads a ListContainersResponse's entries.
func splitContainers(b []byte) ([]listedContainer, error) {
	var out []listedContainer
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("list containers answer: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == fieldContainers && typ == protowire.BytesType {
			msg, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, fmt.Errorf("list containers answer: %w", protowire.ParseError(m))
			}
			c, err := scanContainer(msg)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, fmt.Errorf("list containers answer: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return out, nil
}

// scanContainer reads a Container's ID and state (the last occurrence wins,
// as in protobuf decoding).
func scanContainer(msg []byte) (listedContainer, error) {
	c := listedContainer{raw: msg}
	for b := msg; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return c, fmt.Errorf("list containers answer: container: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var m int
		switch {
		case num == fieldContainerID && typ == protowire.BytesType:
			c.id, m = protowire.ConsumeBytes(b)
		case num == fieldContainerState && typ == protowire.VarintType:
			var v uint64
			v, m = protowire.ConsumeVarint(b)
			c.state = runtimeapi.ContainerState(int32(v))
		default:
			m = protowire.ConsumeFieldValue(num, typ, b)
		}
		if m < 0 {
			return c, fmt.Errorf("list containers answer: container: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return c, nil
}
