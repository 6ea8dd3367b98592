# Herald. `make run` starts everything in one process on the embedded
# default; `make test` runs the unit suite (race detector on, no servers).
GO        ?= go
BIN       ?= bin/herald
PKGS      ?= ./...
FUZZTIME  ?= 15s
GOLANGCI  ?= github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.6.2

.PHONY: all build run test test-web test-web-browser test-integration fuzz bench bench-e2e bench-storm bench-conns lint vet fmt stack-up stack-down stack-status clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/herald

# Loopback unless HERALD_ADDR says otherwise.
run: build
	./$(BIN) dev --config examples/herald-dev.yaml --addr $${HERALD_ADDR:-127.0.0.1:8080}

test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 $(PKGS)

# The web client (clients/js) and the browser tests: builds bin/herald, then
# in clients/js installs the locked dev dependencies from the npm registry,
# builds the SDK and checks that the committed dist/ (embedded in the binary
# for the demo) is what the sources build to, runs the SDK's unit tests, and
# runs the browser tests (headless Chromium from Debian's `chromium` package,
# CHROMIUM_BIN to use another) against `herald dev` processes they start.
test-web: build
	cd clients/js && npm ci --no-audit --no-fund && npm run build
	@if ! git diff --quiet -- clients/js/dist || [ -n "$$(git ls-files --others --exclude-standard -- clients/js/dist)" ]; then \
		echo "clients/js/dist differs from a fresh build: run 'npm run build' in clients/js and commit dist/" >&2; \
		git status --short -- clients/js/dist >&2; git diff --stat -- clients/js/dist >&2; exit 1; fi
	cd clients/js && npm test
	$(MAKE) test-web-browser

# Only the browser tests, on the bin/herald there is (HERALD_BIN to use another).
test-web-browser:
	cd clients/js/test/browser && npm ci --no-audit --no-fund && \
		HERALD_BIN=$${HERALD_BIN:-$(abspath $(BIN))} npm test

# Short coverage-guided runs of every fuzz target (the seed corpora also run in `make test`).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEvent$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./auth
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeClientFrame$$' -fuzztime $(FUZZTIME) ./delivery
	$(GO) test -run '^$$' -fuzz '^FuzzParseSeq$$' -fuzztime $(FUZZTIME) ./delivery
	$(GO) test -run '^$$' -fuzz '^FuzzSSENotification$$' -fuzztime $(FUZZTIME) ./delivery
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBody$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMessage$$' -fuzztime $(FUZZTIME) ./delivery/cluster
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeNotification$$' -fuzztime $(FUZZTIME) ./store/embedded
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeTickRecord$$' -fuzztime $(FUZZTIME) ./pipeline
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFanoutRecord$$' -fuzztime $(FUZZTIME) ./pipeline
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeState$$' -fuzztime $(FUZZTIME) ./policy

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# The durable path end to end on the real stack (scripts/bench/e2e.sh): the
# roles on a fresh keyspace and topic prefix per run, fixed burst and steady
# runs, one table (docs/BENCHMARKS.md). Starts the stack if down and stops it
# after. BENCH_OLD=<commit> runs that build too, alternated, with ratios.
bench-e2e:
	GO=$(GO) bash scripts/bench/e2e.sh

# A reconnect storm of 15,000 clients against a fresh herald dev, the gateway
# in its own process (scripts/bench/storm.sh, docs/BENCHMARKS.md).
bench-storm:
	GO=$(GO) bash scripts/bench/storm.sh

# Connections on one machine (scripts/bench/conns.sh, docs/BENCHMARKS.md):
# idle RSS per connection for each read mode, then 100,000 connections over
# six epoll gateways on the real stack and one broadcast to all of them.
bench-conns:
	GO=$(GO) bash scripts/bench/conns.sh

lint:
	$(GO) run $(GOLANGCI) run ./...

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

# The stack runs secured (SASL_SSL, passwords, TLS; STACK_SECURE=0 for
# plaintext); its client settings are in .stack/herald.env.
stack-up:
	bash scripts/stack/stack.sh up

stack-down:
	bash scripts/stack/stack.sh down

stack-status:
	bash scripts/stack/stack.sh status

# Packages with tests tagged `integration` (they need the real stack and
# fail, never skip, without it). They connect with the HERALD_* settings of
# .stack/herald.env (internal/stacktest), exported here for the tests and
# the role processes they start.
INTEGRATION_PKGS ?= ./migrations/ ./store/cassandra/ ./store/prefcache/ ./delivery/cluster/ ./internal/integration/
STACK_ENV ?= $(or $(STACK_DIR),.stack)/herald.env

test-integration: stack-up
	set -a && . $(abspath $(STACK_ENV)) && set +a && \
		$(GO) test -race -count=1 -p 1 -tags integration -timeout 40m -skip '^TestChaos$$' $(INTEGRATION_PKGS)

# The chaos suite (issue 10, docs/RELIABILITY.md): faults injected into the
# roles and the stack's servers under load, on the real stack. Each
# scenario runs CHAOS_RUNS times (HERALD_CHAOS_RUNS); CHAOS_SEED replays a
# logged seed. The suite bounds itself by the timeout: raise CHAOS_TIMEOUT
# with CHAOS_RUNS (about 15 minutes per run of every scenario).
CHAOS_RUNS    ?= 1
CHAOS_TIMEOUT ?= 25m
.PHONY: test-chaos
test-chaos: stack-up
	set -a && . $(abspath $(STACK_ENV)) && set +a && \
		HERALD_CHAOS_RUNS=$(CHAOS_RUNS) HERALD_CHAOS_SEED=$(CHAOS_SEED) \
		$(GO) test -count=1 -v -tags integration -timeout $(CHAOS_TIMEOUT) -run '^TestChaos$$' ./internal/integration/

clean:
	rm -rf bin
