package bench

import (
	"bufio"
	"strings"
	"testing"
)

func TestParseProcessStats(t *testing.T) {
	page := "# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 4021\n" +
		"go_gc_duration_seconds{quantile=\"0\"} 1e-05\nprocess_resident_memory_bytes 2.5165824e+08\n"
	st, err := parseProcessStats(bufio.NewScanner(strings.NewReader(page)))
	if err != nil {
		t.Fatal(err)
	}
	if st.goroutines != 4021 || st.rss != 251658240 {
		t.Fatalf("got %+v", st)
	}
	if _, err := parseProcessStats(bufio.NewScanner(strings.NewReader("go_goroutines 3\n"))); err == nil {
		t.Fatal("a page without the resident memory was accepted")
	}
}

func TestPlanSubscriptions(t *testing.T) {
	for _, c := range []struct {
		subs              int
		quick             bool
		products, renames int
	}{{1000, false, 10, 20}, {1000, true, 10, 10}, {10000, false, 100, 2}, {50000, true, 500, 2}} {
		p := planSubscriptions(c.subs, c.quick)
		if p.products != c.products || p.renames != c.renames {
			t.Errorf("%d subscribers (quick %v): %+v", c.subs, c.quick, p)
		}
	}
}
