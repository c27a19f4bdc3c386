package rabbitmq

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A lone message is handed over once the gap passes: with a linger of an
// hour, collect still returns the one delivery that is there.
func TestCollectHandsOverALoneMessageAtOnce(t *testing.T) {
	deliveries := make(chan amqp.Delivery, 4)
	deliveries <- amqp.Delivery{DeliveryTag: 1}
	got := make(chan []amqp.Delivery, 1)
	go func() {
		batch, err := collect(context.Background(), deliveries, nil, nil, 1000, time.Millisecond, time.Hour)
		if err != nil {
			t.Error(err)
		}
		got <- batch
	}()
	select {
	case batch := <-got:
		if len(batch) != 1 || batch[0].DeliveryTag != 1 {
			t.Fatalf("batch = %+v, want the one delivery", batch)
		}
	case <-time.After(30 * time.Second): // a bound on a hang, far below the linger
		t.Fatal("collect waited for the linger with a lone message")
	}
}

// What keeps arriving is taken together, up to the batch size.
func TestCollectTakesWhatIsReadyUpToTheBatchSize(t *testing.T) {
	deliveries := make(chan amqp.Delivery, 8)
	for i := range 5 {
		deliveries <- amqp.Delivery{DeliveryTag: uint64(i + 1)}
	}
	first, err := collect(context.Background(), deliveries, nil, nil, 3, time.Millisecond, time.Hour)
	if err != nil || len(first) != 3 {
		t.Fatalf("first batch = %d deliveries, %v; want 3", len(first), err)
	}
	second, err := collect(context.Background(), deliveries, nil, nil, 3, time.Millisecond, time.Hour)
	if err != nil || len(second) != 2 || second[0].DeliveryTag != 4 {
		t.Fatalf("second batch = %+v, %v; want tags 4 and 5", second, err)
	}
}

// A batch that keeps filling ends at the linger, short of the batch size,
// however long the gap.
func TestCollectEndsAFillingBatchAtTheLinger(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deliveries := make(chan amqp.Delivery, 1)
	go func() { // a delivery is always ready
		for tag := uint64(1); ; tag++ {
			select {
			case deliveries <- amqp.Delivery{DeliveryTag: tag}:
			case <-ctx.Done():
				return
			}
		}
	}()
	batch, err := collect(ctx, deliveries, nil, nil, 1<<30, time.Hour, 20*time.Millisecond)
	if err != nil || len(batch) == 0 || len(batch) >= 1<<30 {
		t.Fatalf("batch of %d, %v; want one cut by the linger", len(batch), err)
	}
}

// An idle tick with nothing delivered returns an empty batch; a closed
// delivery channel is an error.
func TestCollectIdleAndClosed(t *testing.T) {
	idle := make(chan time.Time, 1)
	idle <- time.Now()
	if batch, err := collect(context.Background(), make(chan amqp.Delivery), nil, idle, 10, time.Millisecond, time.Hour); err != nil || batch != nil {
		t.Fatalf("idle: %v, %v", batch, err)
	}
	closed := make(chan amqp.Delivery)
	close(closed)
	if _, err := collect(context.Background(), closed, nil, nil, 10, time.Millisecond, time.Hour); err == nil {
		t.Fatal("closed deliveries: no error")
	}
}
