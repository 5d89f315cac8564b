package cpu_test

import (
	"testing"

	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/internal/testkit/testlowrank"
)

func TestConformance(t *testing.T) {
	testlowrank.Run(t, cpu.New())
}
