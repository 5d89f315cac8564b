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
	return pipelineAhead(n, jobs, 0, mem, cost, func(int) (struct{}, error) { return struct{}{}, nil },
		func(i int, _ struct{}) (R, error) { return compute(i) }, write)
}

// pipelineAhead is pipeline with a load stage run ahead of the
// computation: load(i) runs on one goroutine, in item order, up to ahead
// items beyond the jobs being computed (items loaded, or computed and
// waiting to be written) (for a tensor: reading it and
// converting it to the type it is computed in), and compute(i, l) then
// takes what load returned. At most jobs computations run at once, and
// writes (on the calling goroutine, in item order) overlap the next
// computations; so reading the next item and writing the previous one
// overlap the current item's computation. Items loaded ahead count
// against the budget like those being computed: item i takes cost(i)
// before its load starts and gives it back once written, so at most
// jobs+ahead items hold memory at once, all of it within the budget (an
// item that does not fit beside those in flight waits for them to be
// written). An error from load(i) is returned when item i's turn to be
// written comes, as one from compute(i) would be.
func pipelineAhead[L, R any](n, jobs, ahead int, mem *budget, cost func(i int) int64, load func(i int) (L, error), compute func(i int, l L) (R, error), write func(i int, r R) error) error {
	ctx, cancel := context.WithCancel(cmdContext)
	defer cancel()
	type result struct {
		r   R
		err error
	}
	// Item i is in flight (loaded, computing or waiting to be written)
	// only once items up to i−jobs−ahead are written, so jobs+ahead
	// result slots, reused in turn, are enough (a tensor list may be a
	// million long).
	jobs = max(min(jobs, n), 1)
	ahead = max(min(ahead, n-jobs), 0)
	slots := make([]chan result, jobs+ahead)
	for i := range slots {
		slots[i] = make(chan result, 1)
	}
	held := make(chan struct{}, jobs+ahead) // items in flight
	running := make(chan struct{}, jobs)    // computations running
	go func() {
		for i := range n {
			select {
			case held <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if cost != nil {
				if mem.acquire(ctx, cost(i)) != nil {
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			l, err := load(i)
			if err != nil {
				slots[i%len(slots)] <- result{err: err}
				return
			}
			// The computation waits for its turn on its own goroutine,
			// so that the next item is loaded meanwhile (the waiting
			// senders of a channel are served in order).
			go func() {
				select {
				case running <- struct{}{}:
				case <-ctx.Done():
					slots[i%len(slots)] <- result{err: ctx.Err()}
					return
				}
				defer func() { <-running }()
				if ctx.Err() != nil {
					slots[i%len(slots)] <- result{err: ctx.Err()}
					return
				}
				r, err := compute(i, l)
				slots[i%len(slots)] <- result{r, err}
			}()
		}
	}()
	for i := range n {
		var res result
		select {
		case res = <-slots[i%len(slots)]:
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
		var res0 result
		res = res0 // the written result is garbage now
		if cost != nil {
			c := cost(i)
			mem.release(c)
			if c >= releaseAfter {
				// Give a large item's memory back now rather than when
				// the heap has doubled (GOGC): peak RSS stays near one
				// item's working set (or jobs items') however many follow.
				debug.FreeOSMemory()
			}
		}
		<-held
	}
	return nil
}
