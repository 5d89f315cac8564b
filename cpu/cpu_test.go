package cpu_test

import (
	"testing"

	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/internal/backendtest"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, cpu.New())
}
