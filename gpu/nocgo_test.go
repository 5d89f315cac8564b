//go:build !cgo

package gpu_test

import (
	"testing"

	"github.com/lowrank-go/lowrank/gpu"
)

func TestNoCgo(t *testing.T) {
	err := gpu.New().Init()
	if err == nil || err.Error() != "cuda backend needs cgo (built with CGO_ENABLED=0)" {
		t.Errorf("Init without cgo: %v", err)
	}
}
