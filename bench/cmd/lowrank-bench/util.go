package main

import "math/rand/v2"

type rnd struct{ r *rand.Rand }

func newRand(seed uint64) rnd { return rnd{rand.New(rand.NewPCG(seed, 99))} }

func (r rnd) f32(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.r.NormFloat64())
	}
	return v
}
