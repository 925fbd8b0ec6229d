# connhost build. `make run` builds everything and runs a plugin locally;
# `make test` is what CI runs (.ci/run). Go and make are all a Debian
# machine needs: targets that need more (wat2wasm, gcc, minisign) install
# what is missing through .ci/deps, with apt-get.

SHELL    := /bin/bash
GO       ?= go
BIN      := bin
CONNHOST := $(BIN)/connhost
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
# The commit `connhost --version` names; set here because GOFLAGS may carry
# -buildvcs=false, which leaves it out of the build info.
COMMIT   ?= $(shell c=$$(git rev-parse HEAD 2>/dev/null) && { git diff --quiet HEAD || c=$$c-dirty; echo $$c; })

# One build configuration for everything: the binary, the plugins, the
# guests the tests build and the test binaries themselves, so each package
# compiles once (a second configuration recompiles all of it, minutes from
# empty caches). It is the shipped one: no cgo, no local paths.
export CGO_ENABLED := 0
export GOFLAGS     += -trimpath

# Every plugins/<name>/ with a manifest.json is a plugin, except plugins/faulty
# (its guests are built by the host tests themselves).
PLUGIN_NAMES := $(filter-out faulty,$(patsubst plugins/%/manifest.json,%,$(wildcard plugins/*/manifest.json)))
# Go plugins (a main package next to the manifest), for the wasip1 vet.
GO_PLUGIN_PKGS := $(foreach n,$(PLUGIN_NAMES),$(if $(shell grep -ls '^package main' plugins/$(n)/*.go),./plugins/$(n)))

.PHONY: build plugins test test-race bench run run-local lint clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(CONNHOST) ./cmd/connhost

# Each plugin: <name>.wat → wat2wasm, else a Go main package → wasip1
# c-shared (a WASI reactor); then `connhost plugin pack` embeds the manifest.
plugins: build
	@$(if $(wildcard plugins/*/*.wat),.ci/deps wat2wasm)
	@mkdir -p $(BIN)/plugins/raw
	@set -e; for n in $(PLUGIN_NAMES); do \
		d=plugins/$$n; raw=$(BIN)/plugins/raw/$$n.wasm; \
		if [ -f $$d/$$n.wat ]; then \
			echo "wat2wasm $$d/$$n.wat"; wat2wasm $$d/$$n.wat -o $$raw; \
		elif grep -qs '^package main' $$d/*.go; then \
			echo "go build $$d (wasip1)"; \
			GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o $$raw ./$$d; \
		else \
			echo "$$d: neither $$n.wat nor a Go main package" >&2; exit 1; \
		fi; \
		$(CONNHOST) plugin pack --manifest $$d/manifest.json -o $(BIN)/plugins/$$n.wasm $$raw; \
	done

# The ABI and the guest SDK are modules of their own (RATIONALE.md), which
# `go test ./...` at the root does not enter.
SUB_MODULES := abi sdk-guest

test: build plugins
	@.ci/deps minisign
	$(GO) test ./...
	@set -e; for m in $(SUB_MODULES); do (set -x; cd $$m && $(GO) test ./...); done
	cd sdk-guest && GOOS=wasip1 GOARCH=wasm $(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet $(GO_PLUGIN_PKGS)
	@$(MAKE) --no-print-directory test-race

# The packages that run goroutines against shared state, under the race
# detector (it needs cgo, so a C compiler). -short skips the tests that are
# slow and exercise no concurrency; each says so where it checks
# testing.Short(). internal/engines is not here yet: under the race detector
# an engine's first call, which compiles the plugin, outlasts the call
# deadline of its tests.
RACE_PKGS := ./host ./internal/mirror ./internal/supervisor ./internal/service ./internal/store
test-race:
	@.ci/deps gcc
	CGO_ENABLED=1 $(GO) test -race -short $(RACE_PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The server: every built plugin installed into $(DATA) (installing the same
# file again is a no-op), then `connhost serve` on $(LISTEN). The first start
# prints the URL and an API key; later starts say how to make another key.
DATA   ?= data
LISTEN ?= 127.0.0.1:8080

run: plugins
	$(CONNHOST) plugin install --data-dir $(DATA) --log-level warn $(BIN)/plugins/*.wasm
	$(CONNHOST) serve --data-dir $(DATA) --listen $(LISTEN)

# The local runner end to end: a TicketDesk test server on loopback
# (cmd/tdserver) and the ticketdesk plugin run against it, command by command.
TD_ADDR ?= 127.0.0.1:8081
TD_KEY  ?= demo-key
# The API key goes by environment, as secrets should: argv is visible to ps.
TD_RUN  := CONNHOST_PARAM_API_KEY=$(TD_KEY) $(CONNHOST) run $(BIN)/plugins/ticketdesk.wasm --param url=http://$(TD_ADDR)

run-local: plugins
	$(GO) build -o $(BIN)/tdserver ./cmd/tdserver
	@set -e; \
	$(BIN)/tdserver --listen $(TD_ADDR) --api-key $(TD_KEY) & td=$$!; \
	trap 'kill $$td 2>/dev/null' EXIT; \
	for i in $$(seq 100); do \
		(exec 3<>/dev/tcp/$(word 1,$(subst :, ,$(TD_ADDR)))/$(word 2,$(subst :, ,$(TD_ADDR)))) 2>/dev/null && break; sleep 0.1; \
	done; \
	rm -f $(BIN)/run-last-run.json; \
	set -x; \
	$(CONNHOST) version; \
	$(CONNHOST) plugin inspect $(BIN)/plugins/ticketdesk.wasm; \
	$(TD_RUN) test-module; \
	$(TD_RUN) fetch-incidents --last-run $(BIN)/run-last-run.json; \
	$(TD_RUN) fetch-incidents --last-run $(BIN)/run-last-run.json; \
	$(TD_RUN) get-remote-data --args-json '{"remote_incident_id":"TD-2","last_update":"2000-01-01T00:00:00Z"}'; \
	$(TD_RUN) ticketdesk-add-comment --arg id=TD-1 --arg body="Escalated to tier 2."; \
	$(TD_RUN) ticketdesk-get-ticket --arg id=TD-1

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@set -e; for m in $(SUB_MODULES); do (set -x; cd $$m && $(GO) vet ./...); done
	cd sdk-guest && GOOS=wasip1 GOARCH=wasm $(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet $(GO_PLUGIN_PKGS)

clean:
	rm -rf $(BIN)
