package rabbitmq

import (
	"errors"
	"fmt"
	"strconv"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
)

// The lanes' topology (docs/ARCHITECTURE.md, "Lanes"): the headers
// exchange LanesExchange, bound from the events exchange with "#", routes
// each message by its "lane" header to the quorum queue LaneQueue(n).
// A message with no lane, or a lane no queue has, goes to the alternate
// exchange LanesUnrouted and from there to the projector queue, the
// intake: nothing is dropped, and the projector dead-letters what it finds
// there with the reason.
const (
	LanesExchange = "splitstream.lanes"
	LanesUnrouted = "splitstream.lanes.unrouted"
	// HeaderLane is the message's lane, HeaderLanes how many lanes the
	// relay routed among; HeaderLanePrevTx and HeaderLanePrevPosition the
	// cursor of the message before it in its lane.
	HeaderLane             = "lane"
	HeaderLanes            = "lanes"
	HeaderLanePrevTx       = "lane-prev-tx"
	HeaderLanePrevPosition = "lane-prev-position"
)

// LaneQueue is the name of lane n's queue: "projector.lane.<n>".
func LaneQueue(n int) string { return ProjectorQueue + ".lane." + strconv.Itoa(n) }

// DeclareLanes declares, idempotently, the lanes' exchanges and the queues
// of lanes 0..lanes-1: quorum queues with a single active consumer (the
// lease decides which projector consumes a lane; the broker makes sure
// that, even so, only one consumer of a queue gets deliveries at a time),
// dead-lettering into projector.dead. The projector queue becomes the
// unrouted intake: its binding to the events exchange, from before lanes,
// is removed, or every event would also land there.
func DeclareLanes(ch *amqp.Channel, lanes int) error {
	if lanes < 1 {
		return fmt.Errorf("declare lanes: %d lanes", lanes)
	}
	if err := declareIntake(ch); err != nil {
		return err
	}
	if err := ch.ExchangeDeclare(LanesExchange, amqp.ExchangeHeaders, true, false, false, false,
		amqp.Table{"alternate-exchange": LanesUnrouted}); err != nil {
		return fmt.Errorf("declare exchange %s: %w", LanesExchange, err)
	}
	if err := ch.ExchangeBind(LanesExchange, "#", EventsExchange, false, nil); err != nil {
		return fmt.Errorf("bind exchange %s: %w", LanesExchange, err)
	}
	for n := range lanes {
		q := LaneQueue(n)
		if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{
			amqp.QueueTypeArg:            amqp.QueueTypeQuorum,
			amqp.SingleActiveConsumerArg: true,
			"x-dead-letter-exchange":     DeadExchange,
			"x-dead-letter-routing-key":  q,
		}); err != nil {
			return fmt.Errorf("declare queue %s: %w", q, err)
		}
		if err := ch.QueueBind(q, "", LanesExchange, false, amqp.Table{"x-match": "all", HeaderLane: int64(n)}); err != nil {
			return fmt.Errorf("bind queue %s: %w", q, err)
		}
		if err := ch.QueueBind(ProjectorDeadQueue, q, DeadExchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %s: %w", ProjectorDeadQueue, err)
		}
	}
	return nil
}

// declareIntake declares the projector queue and its dead-letter queue as
// DeclareProjector does, but fed by the lanes' alternate exchange instead
// of by every event.
func declareIntake(ch *amqp.Channel) error {
	if err := declareProjectorQueues(ch); err != nil {
		return err
	}
	if err := ch.QueueUnbind(ProjectorQueue, "#", EventsExchange, nil); err != nil {
		return fmt.Errorf("unbind queue %s: %w", ProjectorQueue, err)
	}
	if err := ch.ExchangeDeclare(LanesUnrouted, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", LanesUnrouted, err)
	}
	if err := ch.QueueBind(ProjectorQueue, "", LanesUnrouted, false, nil); err != nil {
		return fmt.Errorf("bind queue %s: %w", ProjectorQueue, err)
	}
	return nil
}

// laneHeaders adds a routed record's lane headers to h.
func laneHeaders(h amqp.Table, r event.Record) {
	if r.Lanes == 0 {
		return
	}
	h[HeaderLane] = int64(r.Lane)
	h[HeaderLanes] = int64(r.Lanes)
	h[HeaderLanePrevTx] = int64(r.LanePrev.Tx)
	h[HeaderLanePrevPosition] = r.LanePrev.Position
}

// errNoLane is a message without the lane headers.
var errNoLane = errors.New("no lane headers")

// decodeLane reads the lane headers into r.
func decodeLane(h amqp.Table, r *event.Record) error {
	lane, ok1 := int64Header(h, HeaderLane)
	lanes, ok2 := int64Header(h, HeaderLanes)
	tx, ok3 := int64Header(h, HeaderLanePrevTx)
	pos, ok4 := int64Header(h, HeaderLanePrevPosition)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return errNoLane
	}
	if lanes < 1 || lane < 0 || lane >= lanes {
		return fmt.Errorf("lane %d of %d", lane, lanes)
	}
	r.Lane, r.Lanes, r.LanePrev = int(lane), int(lanes), event.Cursor{Tx: uint64(tx), Position: pos}
	return nil
}
