// Package write is the write schema's GraphQL layer: resolvers that translate
// mutations into commands and results back, and nothing more.
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

func meta(ctx context.Context, commandID *string, expected *int) command.Meta {
	// No Actor: the command service records the verified caller's subject.
	return command.Meta{
		CommandID:       deref(commandID),
		CorrelationID:   graph.RequestID(ctx),
		ExpectedVersion: expected,
	}
}

func answer(res command.Result, err error) (*CommandResult, error) {
	if err != nil {
		return nil, err
	}
	return &CommandResult{ID: res.ID, Version: res.Version, Token: res.Token}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
