package rabbitmq

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Management sends one request to the RabbitMQ management API at base
// (credentials in the URL, e.g. http://guest:guest@127.0.0.1:15672), for
// the tools that make scratch vhosts: tests and the benchmark.
func Management(ctx context.Context, base, method, path, body string) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("management URL: %w", err)
	}
	user := u.User
	u.User = nil
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(u.String(), "/")+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	if user != nil {
		pw, _ := user.Password()
		req.SetBasicAuth(user.Username(), pw)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("%s %s: %s %s", method, path, res.Status, msg)
	}
	return nil
}
