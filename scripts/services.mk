# scripts/services.mk — make targets for the local servers (Postgres, RabbitMQ, Elasticsearch).
# Include it from the top-level Makefile:   include scripts/services.mk
# The path is taken from this file's own location, so the include works from any directory.
SERVICES := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/services

.PHONY: services services-down services-status services-logs

services: ## install (if missing) and start Postgres, RabbitMQ and Elasticsearch; wait until healthy
	$(SERVICES) up

services-down: ## stop the three servers
	$(SERVICES) down

services-status: ## one line per server: up/down, version, port
	$(SERVICES) status

services-logs: ## log locations and their last lines
	$(SERVICES) logs
