package main

import (
	"time"

	"github.com/splitstream/splitstream/graph"
)

// The development tokens: the subjects make run prints tokens for too, so
// an order placed for customer-1 on the command playground shows on the
// query playground.
const (
	devAdminSubject    = "admin"
	devCustomerSubject = "customer-1"
	devTokenTTL        = 24 * time.Hour
)

const (
	commandHint = `Mutations need a token: {"Authorization": "Bearer <token>"} under Headers ` +
		`(make run prints an admin and a customer token; bin/splitstream token --sub ID [--admin] mints more).`
	queryHint = `Products and reviews need no token; orders and productHistory do: {"Authorization": "Bearer <token>"} under Headers ` +
		`(make run prints one; bin/splitstream token --sub customer-1 mints more).`
)

// playground is the GraphiQL page of a service: the token hint always, and
// in development mode (SPLITSTREAM_DEV) the headers prefilled with a token
// for sub, minted at start from SPLITSTREAM_JWT_SECRET.
func (a *app) playground(p graph.PlaygroundConfig, sub string, admin bool) graph.PlaygroundConfig {
	if !a.cfg.Dev {
		return p
	}
	tok, err := mintToken(a.cfg, sub, admin, devTokenTTL, time.Now())
	if err != nil {
		a.log.Warn("development mode: the playground's headers stay empty", "playground", p.Title, "err", err)
		return p
	}
	a.log.Warn("development mode: the playground hands a token to every browser on this machine; never set SPLITSTREAM_DEV in production",
		"playground", p.Title, "sub", sub, "admin", admin, "valid", devTokenTTL)
	p.Headers = map[string]string{"Authorization": "Bearer " + tok}
	return p
}
