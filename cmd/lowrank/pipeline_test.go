package main

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// pipeTrace records the events of a pipelineAhead run in the order they
// happened: "p3" item 3 prepared (read), "c3" its computation started,
// "d3" finished, "w3" written.
type pipeTrace struct {
	mu sync.Mutex
	ev []string
}

func (t *pipeTrace) add(kind byte, i int) {
	t.mu.Lock()
	t.ev = append(t.ev, fmt.Sprintf("%c%d", kind, i))
	t.mu.Unlock()
}

func (t *pipeTrace) at(e string) int { return slices.Index(t.ev, e) }

// With ahead 1 and one job, item i+1 is read while item i computes (item
// 0's computation waits until item 1's read is done, which would never
// happen without the read-ahead); computations start in item order, one
// at a time, and results are written in order.
func TestPipelineReadsAhead(t *testing.T) {
	const n = 6
	var tr pipeTrace
	read := make([]chan struct{}, n)
	for i := range read {
		read[i] = make(chan struct{})
	}
	var computing, most int
	var mu sync.Mutex
	err := pipelineAhead(n, 1, 1, nil, nil, nil, func(i int) (func() (int, error), error) {
		tr.add('p', i)
		close(read[i])
		return func() (int, error) {
			tr.add('c', i)
			mu.Lock()
			computing++
			most = max(most, computing)
			mu.Unlock()
			if i+1 < n {
				awaitRead(t, read[i+1], i+1, i) // read while this one computes
			}
			mu.Lock()
			computing--
			mu.Unlock()
			tr.add('d', i)
			return 10 * i, nil
		}, nil
	}, func(i, r int) error {
		if r != 10*i {
			t.Errorf("item %d written with result %d; want %d", i, r, 10*i)
		}
		tr.add('w', i)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if most != 1 {
		t.Errorf("%d computations at once with one job; want 1", most)
	}
	for i := range n {
		if i > 0 && tr.at(fmt.Sprintf("c%d", i)) < tr.at(fmt.Sprintf("d%d", i-1)) {
			t.Errorf("item %d started computing before item %d finished: %v", i, i-1, tr.ev)
		}
		if i > 0 && tr.at(fmt.Sprintf("w%d", i)) < tr.at(fmt.Sprintf("w%d", i-1)) {
			t.Errorf("item %d written before item %d: %v", i, i-1, tr.ev)
		}
		// The window: jobs+ahead = 2 items in flight, so item i+2 is read
		// only once item i is written.
		if i >= 2 && tr.at(fmt.Sprintf("p%d", i)) < tr.at(fmt.Sprintf("w%d", i-2)) {
			t.Errorf("item %d read before item %d was written (more than 2 in flight): %v", i, i-2, tr.ev)
		}
	}
}

// awaitRead waits until item next is read, while item cur computes. A
// pipeline that does not read ahead never reads it: the wait gives up
// after a minute (a deadlock guard, not a timing).
func awaitRead(t *testing.T, read chan struct{}, next, cur int) {
	select {
	case <-read:
	case <-time.After(time.Minute):
		t.Errorf("item %d was not read while item %d computed", next, cur)
	}
}

// Without read-ahead (pipeline, or ahead 0) item i+1 is read only once item
// i is written: one tensor in memory at a time with one job.
func TestPipelineNoReadAhead(t *testing.T) {
	var tr pipeTrace
	err := pipelineAhead(5, 1, 0, nil, nil, nil, func(i int) (func() (int, error), error) {
		tr.add('p', i)
		return func() (int, error) { tr.add('c', i); return i, nil }, nil
	}, func(i, r int) error { tr.add('w', i); return nil })
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 5; i++ {
		if tr.at(fmt.Sprintf("p%d", i)) < tr.at(fmt.Sprintf("w%d", i-1)) {
			t.Errorf("item %d read before item %d was written: %v", i, i-1, tr.ev)
		}
	}
}

// Light items (a model's biases between its weights) take no place in the
// window: the next weight is read ahead past them.
func TestPipelineLightItemsDoNotBlockReadAhead(t *testing.T) {
	// Items: 0 weight, 1 bias, 2 weight, 3 bias, 4 weight.
	light := func(i int) bool { return i%2 == 1 }
	const n = 5
	read := make([]chan struct{}, n)
	for i := range read {
		read[i] = make(chan struct{})
	}
	err := pipelineAhead(n, 1, 1, nil, nil, light, func(i int) (func() (int, error), error) {
		close(read[i])
		return func() (int, error) {
			if !light(i) && i+2 < n {
				awaitRead(t, read[i+2], i+2, i) // the next weight, past a bias
			}
			return i, nil
		}, nil
	}, func(i, r int) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
}

// A failed read is reported as that item's error, in item order: the
// items before it are written, the ones after it are not.
func TestPipelineReadError(t *testing.T) {
	bad := errors.New("lowrank: reading item 3 failed")
	var written []int
	err := pipelineAhead(8, 2, 1, nil, nil, nil, func(i int) (func() (int, error), error) {
		if i == 3 {
			return nil, bad
		}
		return func() (int, error) { return i, nil }, nil
	}, func(i, r int) error { written = append(written, i); return nil })
	if !errors.Is(err, bad) {
		t.Fatalf("err = %v; want the read's error", err)
	}
	if !slices.Equal(written, []int{0, 1, 2}) {
		t.Errorf("written %v before the error; want [0 1 2]", written)
	}
}

// A budget that holds one item at a time allows no read-ahead: item i+1
// takes its cost before it is read, and gets it once item i is written.
func TestPipelineReadAheadHoldsBudget(t *testing.T) {
	b := &budget{total: 1 << 30, avail: 100, changed: make(chan struct{}), restore: func() {}}
	var tr pipeTrace
	err := pipelineAhead(4, 1, 1, b, func(int) int64 { return 60 }, nil, func(i int) (func() (int, error), error) {
		tr.add('p', i)
		return func() (int, error) { return i, nil }, nil
	}, func(i, r int) error { tr.add('w', i); return nil })
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 4; i++ {
		if tr.at(fmt.Sprintf("p%d", i)) < tr.at(fmt.Sprintf("w%d", i-1)) {
			t.Errorf("item %d read before item %d was written, over the budget: %v", i, i-1, tr.ev)
		}
	}
	if b.used != 0 {
		t.Errorf("budget not given back: %d bytes still used", b.used)
	}
}
