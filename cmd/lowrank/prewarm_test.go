package main

import "testing"

// TestPrewarmWanted: only for inputs of at least prewarmBytes, and only
// where the budget has room for eight times that (or is unknown).
func TestPrewarmWanted(t *testing.T) {
	big := &budget{total: 1 << 40, avail: 1 << 40}
	tight := &budget{total: 256 << 20, avail: 256<<20 - reserveBytes}
	for _, c := range []struct {
		b     *budget
		input int64
		want  bool
	}{
		{big, prewarmBytes, true},
		{big, prewarmBytes - 1, false},
		{tight, 1 << 30, false},
		{&budget{}, 1 << 30, true}, // no budget: the system's memory is unknown
		{nil, 1 << 30, true},
	} {
		if got := prewarmWanted(c.b, c.input); got != c.want {
			t.Errorf("budget %+v, input %d: %v, want %v", c.b, c.input, got, c.want)
		}
	}
}
