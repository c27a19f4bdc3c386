package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/splitstream/splitstream/internal/testenv"
)

const (
	rulesFile     = "../../deploy/prometheus/rules.yml"
	dashboardFile = "../../deploy/grafana/splitstream.json"
)

// metricNames parses a PromQL expression and returns the metric names its
// selectors name.
func metricNames(p parser.Parser, expr string) ([]string, error) {
	e, err := p.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				names = append(names, m.Value)
			}
		}
		return nil
	})
	if len(names) == 0 {
		return nil, fmt.Errorf("%q names no metric", expr)
	}
	return names, nil
}

// ruleMetrics parses the rules with Prometheus's rule parser (what
// `promtool check rules` runs) and returns each metric name with the alerts
// that use it.
func ruleMetrics(t *testing.T, p parser.Parser) map[string][]string {
	t.Helper()
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, p, testenv.Logger(t))
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	uses := map[string][]string{}
	alerts := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("rule %q records; this file holds alerts only", r.Record)
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s is there twice", r.Alert)
			}
			alerts[r.Alert] = true
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s has no severity or summary", r.Alert)
			}
			names, err := metricNames(p, r.Expr)
			if err != nil {
				t.Errorf("alert %s: %v", r.Alert, err)
			}
			for _, n := range names {
				uses[n] = append(uses[n], r.Alert)
			}
		}
	}
	want := []string{"SplitstreamProjectorLagging", "SplitstreamRelayBacklogOld", "SplitstreamDeadLetters",
		"SplitstreamSagasPastDeadline", "SplitstreamHorizonHeld", "SplitstreamReadinessFlapping"}
	for _, a := range want {
		if !alerts[a] {
			t.Errorf("no alert %s", a)
		}
	}
	return uses
}

// dashboardMetrics returns each metric name the dashboard's queries use,
// with the panels that use it, parsing every query as PromQL (Grafana's
// variables replaced by values of their kind).
func dashboardMetrics(t *testing.T, p parser.Parser) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$job", ".*")
	uses := map[string][]string{}
	for _, panel := range dash.Panels {
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", panel.Title)
		}
		for _, target := range panel.Targets {
			names, err := metricNames(p, vars.Replace(target.Expr))
			if err != nil {
				t.Errorf("panel %q: %v", panel.Title, err)
			}
			for _, n := range names {
				uses[n] = append(uses[n], panel.Title)
			}
		}
	}
	return uses
}

// exported scrapes url and returns every series name it shows (a
// histogram's _bucket, _sum and _count included).
func exported(t *testing.T, url string) map[string]bool {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for name, f := range fams {
		if len(f.GetMetric()) == 0 {
			continue // a vector with no series yet: nothing to query
		}
		out[name] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			out[name+suffix] = true
		}
	}
	return out
}

// Every metric the alert rules and the dashboard name is exported by a
// running `splitstream all` on its admin listener, once one mutation has
// gone through (counters with labels appear on first use).
func TestAlertRulesAndDashboardUseExportedMetrics(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	uses := ruleMetrics(t, p)
	for n, panels := range dashboardMetrics(t, p) {
		uses[n] = append(uses[n], panels...)
	}
	env, commandURL, _ := stack(t)
	var created struct{ CreateProduct struct{ ID string } }
	if err := gql(commandURL, `mutation { createProduct(input: {name: "Alerted", description: "d", category: "c", priceCents: 100, currency: "EUR", stock: 5}) { id } }`,
		nil, &created); err != nil {
		t.Fatal(err)
	}
	if err := gql(commandURL, `mutation($id: ID!) { placeOrder(input: {customerId: "c", lines: [{productId: $id, quantity: 1}]}) { id } }`,
		map[string]any{"id": created.CreateProduct.ID}, nil); err != nil {
		t.Fatal(err)
	}
	var missing []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		have := exported(t, "http://"+env["SPLITSTREAM_ADMIN_ADDR"]+"/metrics")
		missing = missing[:0]
		for n := range uses {
			if !have[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	sort.Strings(missing)
	for _, n := range missing {
		t.Errorf("%s is not exported by splitstream all; used by %s", n, strings.Join(uses[n], ", "))
	}
}
