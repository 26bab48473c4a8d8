// Package cri is podlife's container-runtime source: a CRI v1 client over the
// runtime's unix socket (containerd, CRI-O) that keeps the runtime's view of
// the node's sandboxes and containers, from container events where the
// runtime streams them and from a periodic full relist that heals anything
// the stream missed.
package cri

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/podlife/podlife/internal/localgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podlife/podlife/lifecycle"
)

// DefaultEndpoint is containerd's CRI socket.
const DefaultEndpoint = "unix:///run/containerd/containerd.sock"

// Config configures the runtime source.
type Config struct {
	// Endpoint is the runtime's CRI socket, unix:///path (CRI-O: unix:///var/run/crio/crio.sock).
	Endpoint string
	// CallTimeout bounds each CRI call (default 2s).
	CallTimeout time.Duration
	// RelistInterval is the period of full relists while no event stream
	// is up (default 1s).
	RelistInterval time.Duration
	// StreamRelistInterval is the period of the relists that check a
	// working event stream (default ten RelistIntervals). The kubelet's
	// evented PLEG relists every 300 s beside its stream
	// (pkg/kubelet/kubelet.go, eventedPlegRelistPeriod).
	StreamRelistInterval time.Duration
	// MaxRecvBytes is the largest CRI answer accepted (default 64 MiB).
	MaxRecvBytes int
	// Stream uses GetContainerEvents where the runtime implements it.
	Stream bool
}

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if strings.HasPrefix(c.Endpoint, "/") {
		c.Endpoint = "unix://" + c.Endpoint
	}
	if !strings.HasPrefix(c.Endpoint, "unix://") || len(c.Endpoint) == len("unix://") {
		return fmt.Errorf("cri-endpoint %q: want unix:///path/to/socket", c.Endpoint)
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 2 * time.Second
	}
	if c.RelistInterval == 0 {
		c.RelistInterval = time.Second
	}
	if c.StreamRelistInterval == 0 {
		c.StreamRelistInterval = 10 * c.RelistInterval
	}
	if c.MaxRecvBytes == 0 {
		c.MaxRecvBytes = 64 << 20
	}
	switch {
	case c.CallTimeout < 0:
		return fmt.Errorf("cri call timeout %s: must be positive", c.CallTimeout)
	case c.RelistInterval < 10*time.Millisecond:
		return fmt.Errorf("poll-interval %s: must be at least 10ms", c.RelistInterval)
	case c.StreamRelistInterval < c.RelistInterval:
		return fmt.Errorf("stream relist interval %s: must be at least the poll interval %s", c.StreamRelistInterval, c.RelistInterval)
	case c.MaxRecvBytes < 0:
		return fmt.Errorf("cri max receive size %d: must be positive", c.MaxRecvBytes)
	}
	return nil
}

// State is a copy-safe snapshot of the runtime's last good listing.
type State struct {
	Sandboxes []lifecycle.Sandbox
	// Containers are the source's own records, shared: read, never written.
	Containers []*lifecycle.Container
	Health     lifecycle.SourceHealth
	// Generation grows whenever the listing or the health changes: an
	// equal Generation is the same Sandboxes and Containers
	// (lifecycle.Input.RuntimeGeneration).
	Generation uint64
	// Streaming is true while container events arrive from the runtime.
	Streaming bool
	// RuntimeName is the runtime's name as its Version answer gives it
	// (containerd, cri-o), kept while it is down; "" before the first.
	RuntimeName string
	// Changes names the pods whose records changed, generation by
	// generation (lifecycle.Input.RuntimeChanges).
	Changes lifecycle.ChangeLog
}

// Source keeps the runtime's view. Run it with Run; read it with State.
type Source struct {
	cfg     Config
	log     *slog.Logger
	updates chan struct{}

	mu         sync.Mutex
	sandboxes  map[string]*lifecycle.Sandbox
	containers map[string]*lifecycle.Container
	order      []*lifecycle.Container // containers sorted by containerOrder; nil: to be sorted again
	health     lifecycle.SourceHealth
	gen        uint64
	changes    lifecycle.ChangeLog // the pods each generation changed
	streaming  bool
	version    string
	name       string // the runtime's name, from the last handshake
	snap       State  // rebuilt lazily when dirty
	dirty      bool
	// sbDirty: the sandboxes changed too (a container event leaves
	// snap.Sandboxes as it was: the same slice is the same sandboxes).
	sbDirty bool
	// missed counts consecutive relists that found changes while streaming:
	// a stream that stays silent through them has stalled.
	missed  int
	restart chan struct{}
	// streamEnded wakes the relist loop when a stream ends: relisting
	// resumes at once, at RelistInterval.
	streamEnded chan struct{}
	// streamSeq counts the events applied; touched holds, by sandbox or
	// container ID, the count at the last event that changed or removed
	// it, until a listing begun after it is committed (see commitListing).
	streamSeq uint64
	touched   map[string]uint64
}

// stallRelists is how many consecutive relists may find changes the stream
// did not deliver before the stream is declared stalled and reopened.
const stallRelists = 3

// New builds a source; it does not dial.
func New(cfg Config, log *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, log: log.With("source", lifecycle.SourceRuntime), updates: make(chan struct{}, 1),
		sandboxes: map[string]*lifecycle.Sandbox{}, containers: map[string]*lifecycle.Container{},
		health: lifecycle.SourceHealth{Configured: true}, dirty: true, sbDirty: true, restart: make(chan struct{}, 1), streamEnded: make(chan struct{}, 1),
		touched: map[string]uint64{}}, nil
}

// Updates is signalled (coalesced) whenever State changes.
func (s *Source) Updates() <-chan struct{} { return s.updates }

// State returns the current view: sandboxes in no particular order,
// containers by pod, name, attempt and creation (see containerOrder).
func (s *Source) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirty {
		sandboxes := s.snap.Sandboxes
		s.snap = State{Sandboxes: sandboxes, Containers: make([]*lifecycle.Container, 0, len(s.containers))}
		if s.sbDirty {
			s.snap.Sandboxes = make([]lifecycle.Sandbox, 0, len(s.sandboxes))
			for _, sb := range s.sandboxes {
				s.snap.Sandboxes = append(s.snap.Sandboxes, *sb)
			}
			s.sbDirty = false
		}
		if s.order == nil {
			s.order = make([]*lifecycle.Container, 0, len(s.containers))
			for _, c := range s.containers {
				s.order = append(s.order, c)
			}
			slices.SortFunc(s.order, containerOrder)
		}
		s.snap.Containers = append(s.snap.Containers, s.order...)
		s.dirty = false
	}
	st := s.snap
	st.Health, st.Generation, st.Streaming, st.RuntimeName, st.Changes = s.health, s.gen, s.streaming, s.name, s.changes
	if s.streaming {
		// Relists are StreamRelistInterval apart: the last one's answer
		// stays trusted until two are missed.
		st.Health.FreshFor = max(lifecycle.DefaultStaleAfter, 2*s.cfg.StreamRelistInterval+s.cfg.CallTimeout)
	}
	return st
}

// changed bumps the generation and signals; call with s.mu held. A change
// of the listing names the pods whose records it changed.
func (s *Source) changed(listing bool, pods ...string) {
	s.gen++
	if listing {
		s.dirty = true
		s.changes.Note(s.gen, pods...)
	}
	select {
	case s.updates <- struct{}{}:
	default:
	}
}

// Run keeps the view until ctx is done. It never gives up: while the runtime
// is unreachable the health says so, and the view recovers when it returns.
func (s *Source) Run(ctx context.Context) error {
	conn, err := grpc.NewClient(s.cfg.Endpoint, append(localgrpc.DialOptions(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(s.cfg.MaxRecvBytes)),
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: s.cfg.CallTimeout,
			Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second}}))...)
	if err != nil {
		return fmt.Errorf("cri client for %s: %w", s.cfg.Endpoint, err)
	}
	defer conn.Close()
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	if s.cfg.Stream {
		go s.streamLoop(ctx, rs)
	}
	for {
		s.relist(ctx, conn)
		t := time.NewTimer(s.relistWait())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-s.streamEnded:
			t.Stop()
		}
	}
}

// relistWait is the time until the next relist: while events stream, a
// relist only checks the stream.
func (s *Source) relistWait() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streaming {
		return s.cfg.StreamRelistInterval
	}
	return s.cfg.RelistInterval
}

func (s *Source) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.CallTimeout)
}

// relist does a full listing and records the outcome in the health record.
func (s *Source) relist(ctx context.Context, conn grpc.ClientConnInterface) {
	start := time.Now()
	err := s.relistOnce(ctx, conn)
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.health
	s.health.Latency = time.Since(start)
	if err != nil {
		s.health.Up, s.health.LastError = false, oneLine(err)
		s.version = "" // handshake again when it comes back
		if was.Up || was.LastError != s.health.LastError {
			s.log.Warn("container runtime unreachable", "err", s.health.LastError)
			s.changed(false)
		}
		return
	}
	s.health.Up, s.health.LastError, s.health.LastSuccess = true, "", time.Now()
	if !was.Up {
		s.log.Info("container runtime reachable", "runtime", s.version, "endpoint", s.cfg.Endpoint)
		s.changed(false)
	}
}

func (s *Source) relistOnce(ctx context.Context, conn grpc.ClientConnInterface) error {
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	if err := s.handshake(ctx, rs); err != nil {
		return err
	}
	s.mu.Lock()
	begun := s.streamSeq
	s.mu.Unlock()
	cctx, cancel := s.call(ctx)
	sbs, err := listSandboxes(cctx, conn)
	cancel()
	if err != nil {
		return fmt.Errorf("cri %s: list pod sandboxes: %w", s.cfg.Endpoint, err)
	}
	cctx, cancel = s.call(ctx)
	ctrs, err := listContainers(cctx, conn)
	cancel()
	if err != nil {
		return fmt.Errorf("cri %s: list containers: %w", s.cfg.Endpoint, err)
	}
	sandboxes, containers, newSandboxes, newContainers := s.reuseUnchanged(sbs, ctrs)
	for _, l := range newSandboxes {
		var sb runtimeapi.PodSandbox
		if err := l.decode(&sb); err != nil {
			return fmt.Errorf("cri %s: list pod sandboxes: %w", s.cfg.Endpoint, err)
		}
		v := ConvertSandbox(&sb)
		sandboxes[v.ID] = &v
	}
	// Exit codes, reasons and times are only in ContainerStatus: ask for it
	// when a container is new or its state moved since we last asked.
	for _, l := range newContainers {
		c := &runtimeapi.Container{}
		if err := l.decode(c); err != nil {
			return fmt.Errorf("cri %s: list containers: %w", s.cfg.Endpoint, err)
		}
		cctx, cancel := s.call(ctx)
		st, err := rs.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.GetId()})
		cancel()
		var cst *runtimeapi.ContainerStatus
		switch {
		case err == nil:
			cst = st.GetStatus()
		case status.Code(err) == codes.NotFound:
			continue // removed since the listing
		default:
			return fmt.Errorf("cri %s: container status %s: %w", s.cfg.Endpoint, c.GetId(), err)
		}
		v := ConvertContainer(c, cst, sandboxes)
		containers[v.ID] = &v
	}
	s.commitListing(sandboxes, containers, begun)
	return nil
}

// handshake asks the runtime for its version once per connection.
func (s *Source) handshake(ctx context.Context, rs runtimeapi.RuntimeServiceClient) error {
	s.mu.Lock()
	handshaken := s.version != ""
	s.mu.Unlock()
	if handshaken {
		return nil
	}
	cctx, cancel := s.call(ctx)
	v, err := rs.Version(cctx, &runtimeapi.VersionRequest{Version: "v1"})
	cancel()
	if err != nil {
		return fmt.Errorf("cri %s: version: %w", s.cfg.Endpoint, err)
	}
	s.mu.Lock()
	s.version = v.GetRuntimeName() + " " + v.GetRuntimeVersion() + " (CRI " + v.GetRuntimeApiVersion() + ")"
	s.name = v.GetRuntimeName()
	s.mu.Unlock()
	return nil
}

// reuseUnchanged keeps the records of the listed items that are known and
// in the same state, and returns the others to be decoded. (The stream's
// apply writes s.sandboxes and s.containers: look up under the lock.)
func (s *Source) reuseUnchanged(sbs, ctrs []listed) (map[string]*lifecycle.Sandbox, map[string]*lifecycle.Container, []listed, []listed) {
	sandboxes := make(map[string]*lifecycle.Sandbox, len(sbs))
	containers := make(map[string]*lifecycle.Container, len(ctrs))
	var newSandboxes, newContainers []listed
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range sbs {
		if old := s.sandboxes[string(l.id)]; old != nil && old.State == convertSandboxState(runtimeapi.PodSandboxState(l.state)) {
			sandboxes[old.ID] = old
		} else {
			newSandboxes = append(newSandboxes, l)
		}
	}
	for _, l := range ctrs {
		if old := s.containers[string(l.id)]; old != nil && old.State == convertState(runtimeapi.ContainerState(l.state)) && hasStatus(old) {
			containers[old.ID] = old
		} else {
			newContainers = append(newContainers, l)
		}
	}
	return sandboxes, containers, newSandboxes, newContainers
}

// commitListing makes a relist's result the source's state when it differs,
// and restarts a stream that keeps missing what relists find. What the
// stream changed after the listing began (event begun+1 on) is newer than
// the listing: the stream's record, or its removal, stands (the kubelet's
// evented PLEG keeps the newer of the two the same way, by timestamp).
func (s *Source) commitListing(sandboxes map[string]*lifecycle.Sandbox, containers map[string]*lifecycle.Container, begun uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, seq := range s.touched {
		if seq <= begun {
			delete(s.touched, id)
			continue
		}
		delete(sandboxes, id)
		delete(containers, id)
		if sb := s.sandboxes[id]; sb != nil {
			sandboxes[id] = sb
		}
		if c := s.containers[id]; c != nil {
			containers[id] = c
		}
	}
	sameSandboxes := sameRecords(s.sandboxes, sandboxes, sameSandbox)
	if sameSandboxes && sameRecords(s.containers, containers, sameContainer) {
		s.missed = 0
		return
	}
	pods := changedPods(s.sandboxes, sandboxes, func(sb *lifecycle.Sandbox) string { return sb.PodUID }, nil)
	pods = changedPods(s.containers, containers, func(c *lifecycle.Container) string { return c.PodUID }, pods)
	s.sandboxes, s.containers, s.order = sandboxes, containers, nil
	s.sbDirty = s.sbDirty || !sameSandboxes // the same sandboxes: the same slice
	s.changed(true, slices.Sorted(maps.Keys(pods))...)
	if s.streaming {
		if s.missed++; s.missed >= stallRelists {
			s.missed = 0
			select {
			case s.restart <- struct{}{}:
			default:
			}
		}
	}
}

// streamLoop follows GetContainerEvents, falling back to relisting (which
// never stops) whenever the stream is unimplemented, breaks or cannot start,
// and trying the stream again after a pause.
func (s *Source) streamLoop(ctx context.Context, rs runtimeapi.RuntimeServiceClient) {
	retry := time.Second
	for ctx.Err() == nil {
		err := s.streamOnce(ctx, rs)
		was := s.setStreaming(false)
		if ctx.Err() != nil {
			return
		}
		wait := retry
		switch {
		// A runtime without events answers Unimplemented, or (CRI-O with
		// enable_pod_events off) ends the stream at once, before any event.
		case status.Code(err) == codes.Unimplemented || errors.Is(err, io.EOF) && !was:
			wait = 30 * time.Second
			s.log.Info("runtime does not stream container events; relisting only", "relist", s.cfg.RelistInterval,
				"hint", "CRI-O streams them with enable_pod_events = true")
		case was:
			s.log.Info("container event stream ended; relisting until it is back", "err", oneLine(err))
		default:
			s.log.Debug("container event stream not open; relisting until it is", "err", oneLine(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// setStreaming records whether container events arrive and returns what it
// was before; an opened stream is logged.
func (s *Source) setStreaming(on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.streaming
	if was != on {
		s.streaming = on
		if on {
			s.log.Info("following the runtime's container events", "endpoint", s.cfg.Endpoint)
		} else {
			select {
			case s.streamEnded <- struct{}{}:
			default:
			}
		}
		s.changed(false)
	}
	return was
}

func (s *Source) streamOnce(ctx context.Context, rs runtimeapi.RuntimeServiceClient) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := rs.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		return err
	}
	events, errc := make(chan *runtimeapi.ContainerEventResponse), make(chan error, 1)
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	// A runtime without events answers Unimplemented at once; a stream that
	// has not failed after a moment is up, even before its first event.
	confirm := time.NewTimer(200 * time.Millisecond)
	defer confirm.Stop()
	for {
		select {
		case ev := <-events:
			s.setStreaming(true)
			s.apply(ctx, rs, ev)
		case <-s.restart:
			s.log.Warn("container event stream stalled: relists found changes it did not deliver; reopening it")
			return errors.New("event stream stalled")
		case <-confirm.C:
			s.setStreaming(true)
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// apply updates the view from one container event.
func (s *Source) apply(ctx context.Context, rs runtimeapi.RuntimeServiceClient, ev *runtimeapi.ContainerEventResponse) {
	id, psb := ev.GetContainerId(), ev.GetPodSandboxStatus()
	deleted := ev.GetContainerEventType() == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT
	var fetched *runtimeapi.ContainerStatus
	isSandbox := psb != nil && psb.GetId() == id
	if !isSandbox && !deleted && !slices.ContainsFunc(ev.GetContainersStatuses(), func(c *runtimeapi.ContainerStatus) bool { return c.GetId() == id }) {
		cctx, cancel := s.call(ctx)
		if st, err := rs.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: id}); err == nil {
			fetched = st.GetStatus()
		}
		cancel()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if psb != nil {
		s.applySandbox(psb, isSandbox && deleted)
	}
	sandboxID := ""
	if psb != nil {
		sandboxID = psb.GetId()
	}
	var pods []string
	if psb != nil {
		pods = append(pods, psb.GetMetadata().GetUid())
	}
	update := func(st *runtimeapi.ContainerStatus) {
		sid := sandboxID
		if old := s.containers[st.GetId()]; old != nil && old.SandboxID != "" {
			sid = old.SandboxID
		}
		v := ContainerFromStatus(sid, st, s.sandboxes)
		s.setContainer(&v)
		s.touched[v.ID] = s.streamSeq
		pods = append(pods, v.PodUID)
	}
	s.missed = 0
	s.streamSeq++
	s.touched[id] = s.streamSeq
	if psb != nil {
		s.touched[psb.GetId()] = s.streamSeq
	}
	for _, st := range ev.GetContainersStatuses() {
		update(st)
	}
	if fetched != nil {
		update(fetched)
	}
	if deleted && !isSandbox {
		if old := s.containers[id]; old != nil {
			pods = append(pods, old.PodUID)
		}
		s.deleteContainer(id)
	}
	slices.Sort(pods)
	s.changed(true, slices.Compact(pods)...)
}

// applySandbox updates a sandbox from an event's sandbox status, noting
// whether the sandboxes changed. Call with s.mu held.
func (s *Source) applySandbox(psb *runtimeapi.PodSandboxStatus, deleted bool) {
	state := lifecycle.SandboxNotReady
	if psb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
		state = lifecycle.SandboxReady
	}
	switch sb := s.sandboxes[psb.GetId()]; {
	case deleted:
		s.sbDirty = s.sbDirty || sb != nil
		delete(s.sandboxes, psb.GetId())
	case sb != nil:
		s.sbDirty = s.sbDirty || sb.State != state
		sb.State = state
	default:
		v := ConvertSandbox(&runtimeapi.PodSandbox{Id: psb.GetId(), Metadata: psb.GetMetadata(), State: psb.GetState(),
			CreatedAt: psb.GetCreatedAt(), Labels: psb.GetLabels()})
		s.sandboxes[v.ID] = &v
		s.sbDirty = true
	}
}

// hasStatus tells whether a container's record came with its status fields.
// containerOrder orders containers by pod, then name, attempt and creation
// (the order in which the lifecycle join groups them, so that it need not
// sort them itself), then ID.
func containerOrder(a, b *lifecycle.Container) int {
	return cmp.Or(cmp.Compare(a.PodUID, b.PodUID), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Attempt, b.Attempt),
		a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
}

// setContainer adds or replaces a container, keeping s.order sorted (a new
// attempt is an insertion, a state change a replacement). Call with s.mu held.
func (s *Source) setContainer(c *lifecycle.Container) {
	old := s.containers[c.ID]
	s.containers[c.ID] = c
	if s.order == nil {
		return
	}
	if old != nil {
		if i, found := slices.BinarySearchFunc(s.order, old, containerOrder); found && s.order[i] == old {
			s.order = slices.Delete(s.order, i, i+1)
		} else {
			s.order = nil // not where it should be: sort again
			return
		}
	}
	i, _ := slices.BinarySearchFunc(s.order, c, containerOrder)
	s.order = slices.Insert(s.order, i, c)
}

// deleteContainer removes a container, keeping s.order sorted. Call with s.mu held.
func (s *Source) deleteContainer(id string) {
	old := s.containers[id]
	if old == nil {
		return
	}
	delete(s.containers, id)
	if s.order == nil {
		return
	}
	if i, found := slices.BinarySearchFunc(s.order, old, containerOrder); found && s.order[i] == old {
		s.order = slices.Delete(s.order, i, i+1)
	} else {
		s.order = nil
	}
}

func hasStatus(c *lifecycle.Container) bool {
	switch c.State {
	case lifecycle.RuntimeRunning:
		return !c.StartedAt.IsZero()
	case lifecycle.RuntimeExited:
		return !c.FinishedAt.IsZero()
	}
	return true
}

// sameRecords reports whether two listings hold the same records: the same
// IDs, each the same record or one that same says is equal.
func sameRecords[T any](a, b map[string]*T, same func(x, y *T) bool) bool {
	if len(a) != len(b) {
		return false
	}
	for id, x := range a {
		if y := b[id]; x != y && (y == nil || !same(x, y)) {
			return false
		}
	}
	return true
}

// changedPods adds to pods (made when nil) the UIDs of the pods whose
// records differ between a and b: a record not the same one (a listing
// decodes afresh what it cannot tell unchanged, and a new record is what
// the Correlator's index sees).
func changedPods[T any](a, b map[string]*T, podOf func(*T) string, pods map[string]bool) map[string]bool {
	if pods == nil {
		pods = map[string]bool{}
	}
	for id, x := range a {
		if y := b[id]; y != x {
			pods[podOf(x)] = true
		}
	}
	for id, y := range b {
		if a[id] == nil {
			pods[podOf(y)] = true
		}
	}
	return pods
}

func sameSandbox(x, y *lifecycle.Sandbox) bool {
	return x.State == y.State && x.Attempt == y.Attempt && x.PodUID == y.PodUID
}

func sameContainer(x, y *lifecycle.Container) bool {
	return x.State == y.State && x.Attempt == y.Attempt && x.ExitCode == y.ExitCode && x.Reason == y.Reason &&
		x.StartedAt.Equal(y.StartedAt) && x.FinishedAt.Equal(y.FinishedAt) && x.PodUID == y.PodUID && x.Name == y.Name
}

// oneLine flattens an error to one line, keeping gRPC's description only.
func oneLine(err error) string {
	if u := errors.Unwrap(err); u == nil {
		err = fmt.Errorf("%w", err) // a bare gRPC error: no prefix
	}
	if st, ok := status.FromError(errors.Unwrap(err)); ok && st.Code() != codes.Unknown {
		prefix := strings.TrimSuffix(err.Error(), errors.Unwrap(err).Error())
		return strings.Join(strings.Fields(prefix+st.Code().String()+": "+st.Message()), " ")
	}
	return strings.Join(strings.Fields(fmt.Sprint(err)), " ")
}
