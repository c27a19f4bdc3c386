# Splitstream: the two commands a newcomer needs are `make run` and `make test`.
include scripts/services.mk
include web/web.mk

GO        ?= go
BIN       := bin/splitstream
RUN_DIR   := .cache/run
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

.PHONY: run stop dev build generate check-generated vet staticcheck test test-go test-disruptive test-fuzz test-clients e2e bench help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## build bin/splitstream
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/splitstream

run: services build ## start the servers and every role in the background, print where to go
	@scripts/run start

stop: ## stop what make run started (the servers keep running; make services-down stops them)
	@scripts/run stop

dev: services build ## like run, in the foreground
	@scripts/run dev

generate: ## regenerate gqlgen code
	$(GO) generate ./...

check-generated: ## fail if generated code differs from what go generate makes
	@scripts/check-generated

vet: ## go vet, and gofmt over every tracked Go file
	$(GO) vet ./...
	@unformatted="$$(git ls-files -z '*.go' | xargs -0 gofmt -l)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi

staticcheck:
	$(GO) tool staticcheck ./...

test-go: ## go test -race against the real servers
	$(GO) test -race -count=1 -timeout 20m ./...

FUZZTIME ?= 20s
test-fuzz: ## fuzzed mutation inputs against a real stack for FUZZTIME: every answer a client code, the read side keeps up
	$(GO) test -count=1 -run '^$$' -fuzz '^FuzzMutationInputs$$' -fuzztime $(FUZZTIME) -parallel 1 ./cmd/splitstream/

test-disruptive: ## tests that stop a server (build tag disruptive, named TestDisruptive*), one package at a time
	$(GO) test -race -count=1 -timeout 20m -tags disruptive -p 1 -run '^TestDisruptive' ./...

test: services check-generated vet staticcheck test-go test-disruptive test-fuzz test-clients e2e ## every test, with real servers
	@echo "make test: all passed"

bench: build ## benchmarks against a running stack (make run first)
	$(BIN) bench --quick

# Both run against an isolated stack of their own (scripts/teststack: a fresh database, vhost,
# index prefix and free ports; a dev stack on 8080/8090/8070 keeps running). `teststack run`
# starts it, runs the tests with its URLs in the environment, and stops it on any exit (trap).
test-clients: ## third-party clients (graphql-ws, subscriptions-transport-ws) under Node against an isolated stack
	cd test/clients && npm ci --no-audit --no-fund --loglevel=error
	TESTSTACK_DIR=$(CURDIR)/.cache/teststack/clients SPLITSTREAM_WS_INIT_TIMEOUT=3s INIT_TIMEOUT_MS=3000 SPLITSTREAM_RATE_LIMIT=10 scripts/teststack run -- \
		sh -c 'cd test/clients && exec node --test --test-concurrency=1 --test-timeout=300000'

e2e: ## both playgrounds and the admin console in Debian chromium (playwright-core), outside hosts blocked; screenshots to docs/screenshots
	test/e2e/ensure-chromium
	cd test/e2e && npm ci --no-audit --no-fund --loglevel=error
	TESTSTACK_DIR=$(CURDIR)/.cache/teststack/e2e scripts/teststack run -- \
		sh -c 'cd test/e2e && exec node --test --test-timeout=300000'
