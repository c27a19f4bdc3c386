// Package write is the write schema's GraphQL layer: resolvers that hand
// mutations' inputs to the command service and results back, and nothing
// more. The resolvers are generated (resolver.gotpl); each input type is
// the command package's and translates itself (command/input.go).
package write

import (
	"context"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/graph"
)

// Resolver translates GraphQL mutations to the command service.
type Resolver struct {
	Commands *command.Service
	Version  string
}

// meta is what every command carries from the request; the input adds its
// command id and expected version (command.Input). No Actor: the command
// service records the verified caller's subject.
func meta(ctx context.Context) command.Meta {
	return command.Meta{CorrelationID: graph.RequestID(ctx)}
}

func answer(res command.Result, err error) (*CommandResult, error) {
	if err != nil {
		return nil, err
	}
	return &CommandResult{ID: res.ID, Version: res.Version, Token: res.Token}, nil
}
