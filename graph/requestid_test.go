package graph

import (
	"strings"
	"testing"
)

func TestSafeRequestIDs(t *testing.T) {
	for id, want := range map[string]bool{
		"req-42": true, "a.b_c:d-E9": true, strings.Repeat("x", 100): true,
		"": false, strings.Repeat("x", 101): false, "a b": false, "a\nb": false, "ünï": false, "<script>": false,
	} {
		if got := safeID(id); got != want {
			t.Errorf("safeID(%q) = %v, want %v", id, got, want)
		}
	}
}
