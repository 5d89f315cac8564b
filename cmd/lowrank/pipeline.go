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
	ctx, cancel := context.WithCancel(cmdContext)
	defer cancel()
	type result struct {
		r   R
		err error
	}
	// Item i is in flight only once items up to i−jobs are written, so
	// jobs result slots, reused in turn, are enough (a tensor list may be a
	// million long).
	jobs = max(min(jobs, n), 1)
	slots := make([]chan result, jobs)
	for i := range slots {
		slots[i] = make(chan result, 1)
	}
	sem := make(chan struct{}, jobs)
	go func() {
		for i := range n {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if cost != nil {
				if mem.acquire(ctx, cost(i)) != nil {
					return
				}
			}
			go func() {
				if ctx.Err() != nil {
					slots[i%jobs] <- result{err: ctx.Err()}
					return
				}
				r, err := compute(i)
				slots[i%jobs] <- result{r, err}
			}()
		}
	}()
	for i := range n {
		var res result
		select {
		case res = <-slots[i%jobs]:
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
		<-sem
	}
	return nil
}
