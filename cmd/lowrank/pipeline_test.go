package main

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// pipelineAhead loads one item ahead of the computation only when its cost
// fits in the budget beside the item being computed (two of 40 bytes in a
// 100-byte budget, never two of 60); results are written in order and the
// budget is given back.
func TestPipelineAheadBudget(t *testing.T) {
	for _, c := range []struct {
		cost, most int64 // cost of each item; most items holding memory at once
	}{{40, 2}, {60, 1}} {
		b := &budget{total: 1 << 30, avail: 100, changed: make(chan struct{}), restore: func() {}}
		var mu sync.Mutex
		var loaded, written []int
		held, most := int64(0), int64(0) // items loaded and not yet written
		err := pipelineAhead(10, 1, 1, b, func(int) int64 { return c.cost }, func(i int) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			loaded = append(loaded, i)
			held++
			most = max(most, held)
			b.mu.Lock()
			if b.used > b.avail {
				t.Errorf("cost %d: item %d loaded with %d bytes of a %d-byte budget in use", c.cost, i, b.used, b.avail)
			}
			b.mu.Unlock()
			return i * 10, nil
		}, func(i, l int) (int, error) {
			if l != i*10 {
				t.Errorf("compute(%d) got the load of item %d", i, l/10)
			}
			return i, nil
		}, func(i, r int) error {
			mu.Lock()
			defer mu.Unlock()
			written = append(written, r)
			held--
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if most > c.most {
			t.Errorf("cost %d in a 100-byte budget: %d items held memory at once; want at most %d", c.cost, most, c.most)
		}
		for i := range 10 {
			if loaded[i] != i || written[i] != i {
				t.Fatalf("cost %d: loaded in order %v, written in order %v", c.cost, loaded, written)
			}
		}
		if b.used != 0 {
			t.Errorf("cost %d: budget not given back: %d bytes still used", c.cost, b.used)
		}
	}
}

// The next item is loaded while the current one is computed (with room in
// the budget), and a load error is returned in its turn, after the items
// before it are written.
func TestPipelineAheadOverlapAndErrors(t *testing.T) {
	b := &budget{total: 1 << 30, avail: 100, changed: make(chan struct{}), restore: func() {}}
	next := make(chan struct{})
	bad := errors.New("lowrank: bad item 3")
	var written []int
	err := pipelineAhead(6, 1, 1, b, func(int) int64 { return 40 }, func(i int) (int, error) {
		if i == 1 {
			close(next) // item 0's computation waits for this
		}
		if i == 3 {
			return 0, bad
		}
		return i, nil
	}, func(i, l int) (int, error) {
		if i == 0 {
			<-next // deadlocks unless item 1 is loaded while item 0 computes
		}
		return l, nil
	}, func(i, r int) error {
		written = append(written, r)
		return nil
	})
	if !errors.Is(err, bad) {
		t.Fatalf("err = %v; want %v", err, bad)
	}
	if len(written) != 3 {
		t.Errorf("written %v before the error; want items 0, 1, 2", written)
	}
}

// Cancelling cmdContext stops a pipeline waiting on a computation and
// returns errInterrupted.
func TestPipelineAheadInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	saved := cmdContext
	cmdContext = ctx
	defer func() { cmdContext = saved }()
	b := &budget{total: 1 << 30, avail: 100, changed: make(chan struct{}), restore: func() {}}
	err := pipelineAhead(5, 1, 1, b, func(int) int64 { return 40 }, func(i int) (int, error) { return i, nil },
		func(i, l int) (int, error) {
			if i == 1 {
				cancel()
				<-ctx.Done()
			}
			return l, nil
		}, func(int, int) error { return nil })
	if err != errInterrupted {
		t.Fatalf("err = %v; want errInterrupted", err)
	}
}
