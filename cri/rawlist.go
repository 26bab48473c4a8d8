package cri

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podlife/podlife/internal/localgrpc"
)

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
	var raw []byte // kept: the listed items are slices of it
	if err := localgrpc.InvokeRaw(ctx, conn, method, req, &raw); err != nil {
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
	var bad error // an item's, said as scanItem says it
	err := localgrpc.Items(b, fieldItems, func(msg []byte) error {
		item, err := scanItem(msg, stateField)
		if err != nil {
			bad = err
			return err
		}
		out = append(out, item)
		return nil
	})
	switch {
	case bad != nil:
		return nil, bad
	case err != nil:
		return nil, fmt.Errorf("list answer: %w", err)
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
