# The self-hosted GraphiQL bundle (issue 7). Include from the root Makefile:
#   include web/web.mk
#
# `make playground` rebuilds graph/playground/ (graphiql.js, graphiql.css,
# graphiql.js.LEGAL.txt) from web/ with the locked npm packages; commit the
# result, since `go build` embeds it and needs neither Node nor the network.

.PHONY: playground
playground:
	cd web && npm ci && node build.mjs
