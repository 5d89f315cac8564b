package lowrank

import (
	"fmt"
	"math"
)

// Policy says how to choose the rank r of a factorization. Build one with
// Rank, Energy, Tolerance or Ratio.
type Policy struct {
	kind  policyKind
	rank  int
	value float64
}

type policyKind int

const (
	policyNone policyKind = iota
	policyRank
	policyEnergy
	policyTolerance
	policyRatio
)

// Rank keeps exactly r singular triplets, 1 ≤ r ≤ min(d, k).
func Rank(r int) Policy { return Policy{kind: policyRank, rank: r} }

// Energy keeps the smallest r whose singular values hold at least the
// fraction e of the energy, 0 < e ≤ 1:
//
//	Σ_{i≤r} σᵢ² / Σᵢ σᵢ² ≥ e
func Energy(e float64) Policy { return Policy{kind: policyEnergy, value: e} }

// Tolerance keeps the smallest r whose relative Frobenius error is at most
// t, 0 < t ≤ 1:
//
//	‖W − B·A‖_F / ‖W‖_F = sqrt(Σ_{i>r} σᵢ²) / ‖W‖_F ≤ t
func Tolerance(t float64) Policy { return Policy{kind: policyTolerance, value: t} }

// Ratio keeps the largest r whose factors fit in the fraction ρ of the
// dense parameter count, 0 < ρ ≤ 1:
//
//	r·(d + k) ≤ ρ·d·k
//
// It is an error when even r = 1 does not fit.
func Ratio(rho float64) Policy { return Policy{kind: policyRatio, value: rho} }

// String returns the policy as the CLI spells it: "rank=8", "energy=0.99",
// "tol=0.01" or "ratio=0.25".
func (p Policy) String() string {
	switch p.kind {
	case policyRank:
		return fmt.Sprintf("rank=%d", p.rank)
	case policyEnergy:
		return fmt.Sprintf("energy=%g", p.value)
	case policyTolerance:
		return fmt.Sprintf("tol=%g", p.value)
	case policyRatio:
		return fmt.Sprintf("ratio=%g", p.value)
	}
	return "none"
}

// adaptive reports whether the rank depends on the singular values, so
// that the randomized method must grow its sketch until the target is met.
func (p Policy) adaptive() bool { return p.kind == policyEnergy || p.kind == policyTolerance }

// energyTarget returns the fraction of ‖W‖_F² an adaptive policy needs.
func (p Policy) energyTarget() float64 {
	if p.kind == policyTolerance {
		return 1 - p.value*p.value
	}
	return p.value
}

// validate checks the policy's own parameter against a d×k matrix.
func (p Policy) validate(d, k int) error {
	n := min(d, k)
	switch p.kind {
	case policyRank:
		if p.rank < 1 || p.rank > n {
			return errorf(ErrRank, "rank %d for a %d×%d matrix; expected 1 ≤ rank ≤ min(d,k) = %d", p.rank, d, k, n)
		}
	case policyEnergy, policyTolerance:
		name := "energy"
		if p.kind == policyTolerance {
			name = "tolerance"
		}
		if !(p.value > 0 && p.value <= 1) {
			return errorf(ErrPolicy, "%s %v; expected a value in (0, 1]", name, p.value)
		}
	case policyRatio:
		if !(p.value > 0 && p.value <= 1) {
			return errorf(ErrPolicy, "ratio %v; expected a value in (0, 1]", p.value)
		}
		if ratioRank(p.value, d, k) < 1 {
			need := float64(d+k) / (float64(d) * float64(k))
			if need > 1 {
				return errorf(ErrPolicy, "ratio %v: no rank of a %d×%d matrix saves parameters (rank 1 needs %d, the dense matrix has %d); keep it dense",
					p.value, d, k, d+k, d*k)
			}
			return errorf(ErrPolicy, "ratio %v is too small for a %d×%d matrix: rank 1 needs %d parameters, more than %v·%d·%d; expected ratio ≥ %.3g",
				p.value, d, k, d+k, p.value, d, k, need)
		}
	default:
		return errorf(ErrPolicy, "no rank policy given; expected Rank, Energy, Tolerance or Ratio")
	}
	return nil
}

// ratioRank is the largest r with r·(d+k) ≤ ρ·d·k, at most min(d, k).
func ratioRank(rho float64, d, k int) int {
	r := math.Floor(rho * float64(d) * float64(k) / float64(d+k) * (1 + 1e-12))
	return int(min(r, float64(min(d, k))))
}

// spectrum answers the questions a policy asks about the singular values
// s of a d×k matrix W with ‖W‖_F = norm.
type spectrum struct {
	s    []float64
	norm float64
	// exact reports that s holds all min(d,k) singular values, so that
	// the error of rank r is computed from the tail σ_{r+1..} directly;
	// otherwise (randomized) it is sqrt(‖W‖² − Σ_{i≤r}σᵢ²)/‖W‖, which is
	// exact for the projection Q·Qᵀ·W the sketch captured.
	exact bool
	// energy[r] is Σ_{i≤r} σᵢ²/‖W‖², tail[r] is Σ_{i>r} σᵢ²/‖W‖².
	energy, tail []float64
}

func newSpectrum(s []float64, norm float64, exact bool) *spectrum {
	sp := &spectrum{s: s, norm: norm, exact: exact}
	sp.energy = make([]float64, len(s)+1)
	sp.tail = make([]float64, len(s)+1)
	if norm == 0 {
		// W = 0: every rank reproduces it exactly.
		for i := range sp.energy {
			sp.energy[i] = 1
		}
		return sp
	}
	for i, v := range s {
		x := v / norm
		sp.energy[i+1] = sp.energy[i] + x*x
	}
	for i := len(s) - 1; i >= 0; i-- {
		x := s[i] / norm
		sp.tail[i] = sp.tail[i+1] + x*x
	}
	return sp
}

// relError returns ‖W − W_r‖_F / ‖W‖_F for the rank-r truncation.
func (sp *spectrum) relError(r int) float64 {
	if sp.norm == 0 {
		return 0
	}
	if sp.exact {
		return math.Sqrt(sp.tail[r])
	}
	return math.Sqrt(max(0, 1-sp.energy[r]))
}

// energyKept returns Σ_{i≤r} σᵢ² / ‖W‖_F².
func (sp *spectrum) energyKept(r int) float64 { return min(1, sp.energy[r]) }

// energySlack absorbs rounding in cumulative sums so that Energy(1) picks
// the numerical rank instead of always min(d,k).
const energySlack = 1e-12

// choose returns the rank the policy picks from the spectrum, and whether
// the spectrum was enough to meet it (false: an adaptive policy needs more
// singular values than the sketch holds).
func (sp *spectrum) choose(p Policy, d, k int) (int, bool) {
	n := len(sp.s)
	switch p.kind {
	case policyRank:
		return p.rank, p.rank <= n
	case policyRatio:
		r := ratioRank(p.value, d, k)
		return r, r <= n
	case policyEnergy:
		for r := 1; r <= n; r++ {
			if sp.energy[r] >= p.value-energySlack {
				return r, true
			}
		}
	case policyTolerance:
		for r := 1; r <= n; r++ {
			if sp.relError(r) <= p.value*(1+energySlack) {
				return r, true
			}
		}
	}
	return max(n, 1), false
}

// roundRank applies the RoundTo option: up to a multiple of m, capped at
// min(d,k); for Ratio, whose rank is a ceiling, down to a multiple of m
// (never below m).
func roundRank(r, m int, p Policy, n int) int {
	if m <= 1 || r%m == 0 {
		return r
	}
	if p.kind == policyRatio {
		if r > m {
			return r - r%m
		}
		return r
	}
	return min((r+m-1)/m*m, n)
}
