package cpu_test

import (
	"testing"

	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/internal/testkit/testlowrank"
)

// TestConformanceGonum runs the conformance suite on the pure-Go kernels
// as well, whatever BLAS the default backend found (TestConformance).
func TestConformanceGonum(t *testing.T) {
	testlowrank.Run(t, cpu.NewGonum())
}
