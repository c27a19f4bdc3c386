# Splitstream: the two commands a newcomer needs are `make run` and `make test`.
include scripts/services.mk
include web/web.mk

GO        ?= go
BIN       := bin/splitstream
RUN_DIR   := .cache/run
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

.PHONY: run stop dev build generate check-generated vet staticcheck unit test test-go test-disruptive test-clients e2e bench help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## build bin/splitstream
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/splitstream

run: services build ## start the servers and every role in the background, print where to go
	@scripts/run start

stop: ## stop what make run started (the servers keep running; make services-down stops them)
	@scripts/run stop

dev: services build ## like run, in the foreground
	$(BIN) migrate && $(BIN) all

generate: ## regenerate gqlgen code
	$(GO) generate ./...

check-generated: ## fail if generated code differs from what go generate makes
	@scripts/check-generated

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) tool staticcheck ./...

test-go: ## go test -race against the real servers
	$(GO) test -race -count=1 -timeout 20m ./...

test-disruptive: ## tests that stop a server (build tag disruptive, named TestDisruptive*), one package at a time
	$(GO) test -race -count=1 -timeout 20m -tags disruptive -p 1 -run '^TestDisruptive' ./...

test: services check-generated vet staticcheck test-go test-disruptive test-clients ## every test, with real servers
	@echo "make test: all passed"

bench: build ## benchmarks against a running stack (make run first)
	$(BIN) bench --quick

test-clients: ## third-party clients (graphql-ws under Node) against a real stack
	@if [ -d test/clients ]; then cd test/clients && npm ci --no-audit --no-fund --silent && node --test; else echo "test-clients: none yet"; fi
