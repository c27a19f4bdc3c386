package rabbitmq_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/rabbitmq"
)

// A query instance that falls behind holds at most NoticePrefetch notices;
// the broker keeps the rest.
func TestNoticeConsumerPrefetchIsBounded(t *testing.T) {
	amqpURL := testenv.RabbitMQ(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := rabbitmq.Dial(ctx, amqpURL, "test", testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stuck := make(chan struct{})
	defer close(stuck)
	first := make(chan struct{}, 1)
	go func() {
		_ = rabbitmq.ConsumeNotices(ctx, conn, testenv.Logger(t), func(context.Context, projector.Notice) {
			select {
			case first <- struct{}{}:
			default:
			}
			<-stuck // a handler that cannot keep up
		})
	}()
	pub, err := rabbitmq.NewNoticePublisher(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	// The consumer binds its queue asynchronously: publish until it has one.
	for len(first) == 0 {
		if err := pub.PublishNotice(ctx, projector.Notice{At: time.Now()}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	const sent = 2000
	for range sent {
		if err := pub.PublishNotice(ctx, projector.Notice{At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	vhost := strings.TrimPrefix(must(url.Parse(amqpURL)).Path, "/")
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready, unacked := noticeQueue(t, vhost)
		if ready >= sent-rabbitmq.NoticePrefetch {
			if unacked > rabbitmq.NoticePrefetch {
				t.Fatalf("%d notices unacked, want at most %d", unacked, rabbitmq.NoticePrefetch)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker holds %d notices and %d are unacked of %d sent: the consumer took more than its prefetch", ready, unacked, sent)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// noticeQueue reads the message counts of the vhost's only queue from the
// management API (its statistics lag by a few seconds).
func noticeQueue(t *testing.T, vhost string) (ready, unacked int) {
	t.Helper()
	u := must(url.Parse(testenv.ManagementURL()))
	user := u.User
	u.User = nil
	req, _ := http.NewRequest(http.MethodGet, strings.TrimRight(u.String(), "/")+"/api/queues/"+url.PathEscape(vhost), nil)
	pw, _ := user.Password()
	req.SetBasicAuth(user.Username(), pw)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var qs []struct {
		Ready   int `json:"messages_ready"`
		Unacked int `json:"messages_unacknowledged"`
	}
	if err := json.NewDecoder(res.Body).Decode(&qs); err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		ready += q.Ready
		unacked += q.Unacked
	}
	return ready, unacked
}

// OnNoticeStream says when the notice stream is bound and when it is
// lost: the read cache empties itself on both, since notices published
// in between never reach this process. A broker closing the connection
// is a loss, and the consumer's next bind says so again.
func TestNoticeConsumerSaysWhenTheStreamIsDownAndUp(t *testing.T) {
	amqpURL := testenv.RabbitMQ(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := rabbitmq.Dial(ctx, amqpURL, testenv.Name("publisher-test-notices"), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	states := make(chan bool, 16)
	got := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rabbitmq.ConsumeNotices(ctx, conn, testenv.Logger(t), func(context.Context, projector.Notice) {
			select {
			case got <- struct{}{}:
			default:
			}
		}, rabbitmq.OnNoticeStream(func(up bool) { states <- up }))
	}()
	next := func(want bool) {
		t.Helper()
		select {
		case up := <-states:
			if up != want {
				t.Fatalf("the stream said up=%v, want %v", up, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the stream never said up=%v", want)
		}
	}
	next(true)
	closeConnections(t, amqpURL)
	next(false)
	for up := false; !up; { // down again for each failed bind, then up
		select {
		case up = <-states:
		case <-time.After(30 * time.Second):
			t.Fatal("the stream never came back up")
		}
	}
	pub, err := rabbitmq.NewNoticePublisher(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.PublishNotice(ctx, projector.Notice{At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no notice after the stream came back")
	}
	cancel()
	<-done
	next(false)
}
