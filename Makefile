# podlife Makefile. `make test` installs and builds everything the tests need
# (Debian packages, containerd, runc, kubelet, ...) into .tools/ first.
GO        ?= go
TOOLS_BIN := $(CURDIR)/.tools/bin
STATICCHECK_VERSION ?= v0.8.2
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/podlife/podlife/internal/version.Version=$(VERSION)
export PODLIFE_TOOLS_BIN := $(TOOLS_BIN)

.PHONY: all build plugin image test unit lint bench tools demo clean fuzz soak screenshots scale scale-nodes test-crio

all: lint build test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/podlife ./cmd/podlife

## plugin: bin/kubectl-podlife, the kubectl plugin (the same binary: named so,
## it is the CLI that reaches a node's agent through the API server).
plugin:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kubectl-podlife ./cmd/podlife

## image: the container image, built without Docker by hack/image (go-containerregistry):
## the static binary for each of IMAGE_PLATFORMS on distroless/static's users, run as
## 65532. bin/podlife-image.tar is an OCI layout with a multi-platform index (for
## `ctr images import`, `docker load` with the containerd store, skopeo, crane) and a
## docker-archive manifest.json of linux/amd64 (classic `docker load`).
IMAGE           ?= ghcr.io/podlife/podlife:$(VERSION)
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
image:
	$(GO) run ./hack/image -out bin/podlife-image.tar -ref $(IMAGE) -version $(VERSION) -platforms $(IMAGE_PLATFORMS)

## tools: Debian packages and the real components the integration tests run.
tools:
	./hack/install-tools.sh $(TOOLS_BIN)

## test: everything, including the real-component integration tests (needs root).
test: tools lint
	$(GO) test -race -count=1 -timeout 40m ./...
	@# The 1000-client burst without the race detector (see the test's comment).
	$(GO) test -count=1 -run '^TestThousandConcurrentClients$$' -v ./agent
	$(MAKE) fuzz

## fuzz: each fuzz target for FUZZTIME, one after the other (the seed corpora in
## <pkg>/testdata/fuzz also run as plain tests). A failing input is written to
## <pkg>/testdata/fuzz/<Target>/: keep it there as a regression seed.
## FUZZMINIMIZETIME bounds the minimizing of each new input (Go's default is 60s).
## A run that fails with nothing but "context deadline exceeded" wrote no input:
## that is Go's fuzzing coordinator racing its own FUZZTIME deadline on a loaded
## machine, not a finding, and the target's corpus is replayed instead.
FUZZTIME         ?= 20s
FUZZMINIMIZETIME ?= 3s
FUZZFLAGS         = -run '^$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME)
FUZZTARGETS       = ./cri:FuzzSplitList ./cri/crilog:FuzzParseLine ./cri/crilog:FuzzTail ./kubelet:FuzzDecode ./kubelet:FuzzPodsAPIEvent ./agent:FuzzConfigFile ./internal/journal:FuzzJournalEntry
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f $$log $$log.failed' EXIT; \
	for t in $(FUZZTARGETS); do pkg=$${t%%:*}; name=$${t#*:}; rm -f $$log.failed; \
		echo "$(GO) test $(FUZZFLAGS) -fuzz '^$$name\$$' $$pkg"; \
		{ $(GO) test $(FUZZFLAGS) -fuzz "^$$name\$$" $$pkg 2>&1 || touch $$log.failed; } | tee $$log; \
		[ -e $$log.failed ] || continue; \
		if grep -q 'Failing input written' $$log || ! grep -qx '    context deadline exceeded' $$log; then exit 1; fi; \
		echo "fuzz $$name: only the fuzzing coordinator's deadline race, no failing input: replaying the corpus"; \
		$(GO) test -count=1 -run "^$$name\$$" $$pkg; \
	done

## unit: only the tests that need no real components.
unit:
	$(GO) test -count=1 -short $$($(GO) list ./... | grep -v /internal/testenv$$)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@# go.mod and go.sum as go mod tidy leaves them. (test/tools, a module of its own, is tidy too but not
	@# checked here: tidying it loads the sources of every component it builds.)
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@# staticcheck (honnef.co/go/tools), pinned; go run builds it once into the build cache.
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@if grep -n -E '\b(log\.Fatal|klog\.Fatal|os\.Exit)\(' $$(git ls-files '*.go' | grep -v -E '^(cmd|hack|test/scaletools/cmd)/|/testmain_test\.go$$') ; then echo "Fatal/os.Exit outside main packages (and TestMain)"; exit 1; fi
	@# lifecycle/ is pure: no network, no files, no clock.
	@if $(GO) list -f '{{join .Imports "\n"}}' ./lifecycle | grep -E '^(net|os|io/fs|syscall)(/|$$)'; then echo "lifecycle/ must not do I/O"; exit 1; fi
	@if grep -n 'time\.Now\|time\.Since\|time\.Until' lifecycle/*.go; then echo "lifecycle/ must take time as input"; exit 1; fi
	@# The CLI reads the agent's HTTP API (api/), never the agent itself.
	@if $(GO) list -deps ./internal/cli | grep -x 'github.com/podlife/podlife/agent'; then echo "internal/cli must not import agent/ (the wire types are in api/)"; exit 1; fi

## bench (not part of `make test`; needs root): the Go benchmarks of BENCH_PKGS 5 times here
## and at BENCH_BASE (HEAD~1), taking turns, compared by benchstat (hack/benchcmp.sh: bench.out,
## bench-cmp.md); the real-node benchmark (real containerd + kubelet); the load harness's matrix
## against the real agent binary (hack/loadharness: 22 scenarios × 5 runs of 10 s). Rewrites
## BENCHMARKS.md (dated, with the commit), keeping what follows its marker line.
BENCH_PKGS := ./lifecycle ./kubelet ./cri ./agent ./internal/journal ./internal/simnode
BENCH_BASE ?= HEAD~1
bench: build
	PODLIFE_BENCH_TOOLS=1 ./hack/install-tools.sh $(TOOLS_BIN)
	GO=$(GO) BASE=$(BENCH_BASE) ./hack/benchcmp.sh $(BENCH_PKGS)
	$(GO) test -run '^$$' -bench RealNode -benchtime 1x -timeout 30m -v ./cmd/podlife | tee -a bench.out
	$(GO) run ./hack/loadharness -bin bin/podlife -runs 5 -duration 10s -bench bench.out -benchcmp bench-cmp.md -out BENCHMARKS.md

## soak: the real agent for SOAK_DURATION against podlife simnode (250 pods, churn, pods
## replaced, each source down 10 s every minute); judges RSS, goroutines, fds, journal and
## transitions delivered (see hack/soak). Not part of `make test`.
SOAK_DURATION ?= 10m
soak: build
	$(GO) run ./hack/soak -bin bin/podlife -duration $(SOAK_DURATION)

## scale: the fleet harness (not part of `make test`; needs root): one real API server,
## etcd, controller-manager and scheduler; SCALE_NODES (50) hollow kubelets (kubemark's,
## test/scaletools) and as many real podlife agents on simulated nodes, in SCALE_RACKS (5)
## racks; measures podlife's requests against the kubelets' from the audit log, cuts a rack
## (SCALE_CUT=zone: all) for SCALE_CUT_FOR (5m) while containers crash, heals it at once,
## and prints one verdict line (burst, drain, a Lease renewal's p99, lost and duplicated
## transitions). More knobs in hack/scale/scale_test.go (configFromEnv).
scale: tools
	./hack/build-scale-tools.sh $(TOOLS_BIN)
	PODLIFE_SCALE=1 $(GO) test -count=1 -timeout 90m -run '^TestScale$$' -v ./hack/scale

## scale-nodes: `podlife nodes` timed against one real API server holding
## SCALE_FLEET_NODES (5,000) kubelet-sized Nodes and their agents' heartbeat Leases.
scale-nodes: tools
	PODLIFE_SCALE=1 $(GO) test -count=1 -timeout 30m -run '^TestNodesAtFleetSize$$' -v ./hack/scale

## test-crio: only the tests that run over both runtimes (containerd, CRI-O); `make test`
## runs them too, with the rest.
test-crio: tools
	$(GO) test -race -count=1 -run 'TestRealRuntimes|TestDetectionLatency|TestStreamReopensAfterRuntimeRestart|TestCRIOWithoutPodEvents' -v ./cri
	$(GO) test -race -count=1 -run 'TestScenariosOnBothRuntimes' -v ./cmd/podlife

demo:
	$(GO) run ./cmd/podlife demo

## screenshots: the page's screenshots the README shows (docs/screenshots), from
## the browser test against the demo in headless Chromium (Debian's chromium).
screenshots: tools
	PODLIFE_ARTIFACTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestUIDemo$$' -v ./cmd/podlife

clean:
	rm -rf bin bench.out bench-cmp.md
