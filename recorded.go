package lowrank

import "math"

// SetRecorded restores the relative error and the energy recorded for the
// factors elsewhere (by the metadata of a model file written by lowrank
// factorize, say) into factors built by NewFactors, whose RelError and
// Energy are NaN until then:
//
//	RelError = relError   (‖W − B·A‖_F / ‖W‖_F, as recorded)
//	Energy   = energy     (Σ_{i≤r}σᵢ² / ‖W‖_F², as recorded)
//
// The values are taken as given: nothing is recomputed (W is not at
// hand), and Norm stays as it is. relError must be finite and ≥ 0, energy
// in [0, 1]; otherwise SetRecorded returns an error wrapping ErrOption and
// changes nothing. It may also overwrite the values of Factorize (with the
// error of factors rounded since, for instance). It must not run
// concurrently with readers of the fields.
func (f *Factors[T]) SetRecorded(relError, energy float64) error {
	if math.IsNaN(relError) || math.IsInf(relError, 0) || relError < 0 {
		return errorf(ErrOption, "recorded relative error %v; expected a finite value ≥ 0", relError)
	}
	if !(energy >= 0 && energy <= 1) {
		return errorf(ErrOption, "recorded energy %v; expected a value in [0, 1]", energy)
	}
	f.RelError, f.Energy = relError, energy
	return nil
}
