# warren: `make run` starts the server with the example config against the
# local broker; `make test` runs every test. Both make sure the broker and its
# management plugin are up first.
GO       ?= go
CONFIG   ?= warren.example.yaml
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)

.PHONY: run build test generate check-generate vet fmt bench broker chromium clean

# Built, then exec'd (not `go run`), so a signal reaches warren itself and it
# shuts down cleanly.
run: broker build
	exec ./bin/warren serve --config $(CONFIG)

build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/warren ./cmd/warren

test: broker chromium check-generate
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

generate:
	$(GO) tool templ generate

# Side-by-side benchmarks on the local broker (loadgen pacing vs the broker's
# counters; managed vs plain consumer over prefetch x concurrency; cost of
# observation; batch sizes with SQLite; live-change latency; alert latency;
# monitor cost vs queue count); rewrites the bench sections of BENCHMARKS.md.
# About 11 minutes on 2 cores. BENCH_FLAGS passes flags to the program, e.g.
# BENCH_FLAGS='-quick' for a one-minute smoke run, or '-only batch,alert-latency'
# (`go run ./bench -help` lists them).
BENCH_FLAGS ?=
bench: broker
	$(GO) run ./bench $(BENCH_FLAGS)

# Monitor and store benchmarks (BENCHMARKS.md, "Monitor and store"): a poll
# of 10,000 queues from a fake management API into a real store, and chart
# queries over a full default history of 1,000 queues (generating it takes
# about 15 minutes on 2 cores; WARREN_BENCH_QUEUES=50 for a quick look).
.PHONY: bench-monitor
bench-monitor:
	$(GO) test ./store -run '^$$' -bench Poll10k -benchtime 10x -count 3 -benchmem
	$(GO) test ./store -run '^$$' -bench QueueSeries -benchtime 200x -timeout 60m

# Screenshots of every page at desktop (1280x800) and phone (390x844) width
# into docs/screenshots/: the real server with queues on the local broker, a
# consumer under load and firing alerts, captured in headless Chromium.
.PHONY: screenshots
screenshots: broker chromium
	WARREN_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test ./cmd/warren -run '^TestScreenshots$$' -count=1 -timeout 10m -v

# Dashboard and JSON API at 10,000 queues (BENCHMARKS.md, "Dashboard and
# API"): a 32-connection load client against the real web handler with a
# fake 10,000-queue source, and the server's cost per request in process.
# About 2 minutes; rewrites its section of BENCHMARKS.md.
.PHONY: bench-web
bench-web:
	$(GO) run ./bench/web -duration 15s -conns 32 -queues 10000 -write

# Fails when `make generate` would change the templ output in the tree
# (a stale or missing *_templ.go), comparing checksums before and after.
check-generate:
	@before=$$(find . -name '*_templ.go' -not -path './.git/*' | sort | xargs -r sha256sum); \
	$(GO) tool templ generate >/dev/null 2>&1 || { echo "templ generate failed" >&2; exit 1; }; \
	after=$$(find . -name '*_templ.go' -not -path './.git/*' | sort | xargs -r sha256sum); \
	if [ "$$before" != "$$after" ]; then echo "generated templ code was out of date: make generate rewrote it; commit the result" >&2; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

broker:
	@./scripts/ensure-rabbitmq.sh

chromium:
	@./scripts/ensure-chromium.sh

clean:
	rm -rf bin warren.db warren.db-wal warren.db-shm
