package rabbitmq

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DeclareEvents declares the durable topic exchange every domain event is
// published to, routed by "<streamType>.<eventType>". Declaring is
// idempotent: the relay and every consumer call it before they use the
// exchange, so no process depends on another having started first.
func DeclareEvents(ch *amqp.Channel) error {
	if err := ch.ExchangeDeclare(EventsExchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", EventsExchange, err)
	}
	return nil
}

// DeclareTopology declares every exchange and durable queue of the event
// flow. The relay calls it before it publishes: a message published before
// its consumer's queue exists would be dropped, so the queues cannot wait
// for the projector and the saga to start.
func DeclareTopology(ch *amqp.Channel) error {
	if err := DeclareProjector(ch); err != nil {
		return err
	}
	return DeclareSaga(ch)
}
