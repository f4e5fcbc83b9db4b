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

# Fails when the committed templ output differs from what `make generate` makes.
check-generate:
	@$(GO) tool templ generate >/dev/null 2>&1
	@git diff --exit-code -- '*_templ.go' >/dev/null || { echo "generated templ code is out of date: run make generate and commit" >&2; git --no-pager diff --stat -- '*_templ.go'; exit 1; }
	@test -z "$$(git ls-files --others --exclude-standard -- '*_templ.go')" || { echo "uncommitted generated templ files: run make generate and commit" >&2; exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')

broker:
	@./scripts/ensure-rabbitmq.sh

chromium:
	@./scripts/ensure-chromium.sh

clean:
	rm -rf bin warren.db warren.db-wal warren.db-shm
