package main

import (
	"context"
	"runtime/debug"
)

// releaseAfter is the memory cost of an item (bytes) from which pipeline
// returns the freed memory to the system once the item is written: a
// collection then costs far less than the item's work.
const releaseAfter = 256 << 20

// tick returns errInterrupted when cmdContext is cancelled, checking it
// every 4096th call: long loops over names call it with their index so that
// SIGINT and SIGTERM are honoured at once even in a loop of millions.
func tick(i int) error {
	if i&4095 == 0 && cmdContext.Err() != nil {
		return errInterrupted
	}
	return nil
}

// recycler is a result whose buffers may be reused once it is written:
// pipeline calls recycle after write.
type recycler interface{ recycle() }

// pipeline computes items 0…n-1 with at most jobs of them in flight and
// hands each result to write in item order, so that outputs are written
// in a fixed order whatever finishes first. An item's slot is freed only
// once it has been written, so at most jobs results are held at once. It
// stops at the first error, and when cmdContext is cancelled (then it
// returns errInterrupted).
//
// With a memory budget, item i also takes cost(i) bytes of it before it
// starts, in item order, and gives them back once written; so the items
// in flight never need more than the budget together (planning has made
// sure that each fits alone, so the oldest item can always proceed).
func pipeline[R any](n, jobs int, mem *budget, cost func(i int) int64, compute func(i int) (R, error), write func(i int, r R) error) error {
	return pipelineAhead(n, jobs, 0, mem, cost, nil, func(i int) (func() (R, error), error) {
		return func() (R, error) { return compute(i) }, nil
	}, write)
}

// pipelineAhead is pipeline with each item in two stages: prepare(i)
// reads what item i needs (a tensor, converted) and returns the
// computation that finishes it. While jobs items compute, up to ahead
// more are prepared, and an item's result is written while the next ones
// compute; so reading, converting and writing overlap the computations
// instead of coming between them. The computations start in item order,
// at most jobs at a time.
//
// The window of jobs+ahead counts heavy items only: an item for which
// light(i) is true (nil: none is) needs next to no memory or work — a
// small tensor copied as it is — and takes no place in it, so that a
// model's biases and norms between its weights do not stop the next
// weight from being read ahead (at most lightQueue of them wait at once).
// An item prepared ahead holds its cost of the budget like any item in
// flight: with a budget that fits only one item, nothing is read ahead.
func pipelineAhead[R any](n, jobs, ahead int, mem *budget, cost func(i int) int64, light func(i int) bool, prepare func(i int) (func() (R, error), error), write func(i int, r R) error) error {
	ctx, cancel := context.WithCancel(cmdContext)
	defer cancel()
	type result struct {
		r   R
		err error
	}
	heavy := func(i int) bool { return light == nil || !light(i) }
	jobs = max(min(jobs, n), 1)
	window := make(chan struct{}, max(jobs+ahead, 1)) // a token per heavy item in flight
	running := make(chan struct{}, jobs)              // a token per computing item
	// Each item in flight has a channel for its result, queued in item
	// order (a tensor list may be a million long: only those in flight
	// have one).
	queue := make(chan chan result, jobs+ahead+lightQueue)
	// turn is closed once the previous item has started computing (or
	// failed): item i waits for it, so computations start in item order.
	turn := make(chan struct{})
	close(turn)
	go func() {
		for i := range n {
			if heavy(i) {
				select {
				case window <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
			if cost != nil {
				if mem.acquire(ctx, cost(i)) != nil {
					return
				}
			}
			slot := make(chan result, 1)
			select {
			case queue <- slot:
			case <-ctx.Done():
				return
			}
			prev, mine := turn, make(chan struct{})
			turn = mine
			go func() {
				started := false
				defer func() {
					if !started {
						close(mine)
					}
				}()
				if ctx.Err() != nil {
					slot <- result{err: ctx.Err()}
					return
				}
				run, err := prepare(i)
				if err != nil {
					slot <- result{err: err}
					return
				}
				select {
				case <-prev:
				case <-ctx.Done():
					slot <- result{err: ctx.Err()}
					return
				}
				select {
				case running <- struct{}{}:
				case <-ctx.Done():
					slot <- result{err: ctx.Err()}
					return
				}
				started = true
				close(mine)
				r, err := run()
				<-running
				slot <- result{r, err}
			}()
		}
	}()
	for i := range n {
		var res result
		select {
		case slot := <-queue:
			select {
			case res = <-slot:
			case <-ctx.Done():
				return errInterrupted
			}
		case <-ctx.Done():
			return errInterrupted
		}
		if res.err != nil {
			if cmdContext.Err() != nil {
				return errInterrupted
			}
			return res.err
		}
		if err := write(i, res.r); err != nil {
			return err
		}
		rc, _ := any(res.r).(recycler)
		var res0 result
		res = res0 // the written result is garbage now
		if cost != nil {
			mem.release(cost(i))
		}
		if rc != nil {
			rc.recycle() // its buffers go to the pool, for the next items
		}
		if cost != nil {
			if c := cost(i); c >= releaseAfter {
				// Give a large item's memory back now rather than when
				// the heap has doubled (GOGC): peak RSS stays near one
				// item's working set (or jobs items') however many follow.
				debug.FreeOSMemory()
			}
		}
		if heavy(i) {
			<-window
		}
	}
	return nil
}

// lightQueue is how many light items pipelineAhead lets wait beyond its
// window.
const lightQueue = 64
