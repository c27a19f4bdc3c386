package main

import (
	"runtime/debug"
	"testing"
)

// The collector's target is gcPercent unless GOGC says otherwise.
func TestTuneGCKeepsAGOGCThatIsSet(t *testing.T) {
	was := debug.SetGCPercent(100)
	defer debug.SetGCPercent(was)

	tuneGC(func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, the target became %d; want it left as it was (100)", got)
	}
	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("with GOGC unset, the target is %d, want %d", got, gcPercent)
	}
}
