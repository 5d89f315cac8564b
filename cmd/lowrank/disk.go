package main

import (
	"fmt"
	"path/filepath"
)

// expandNote and expandLimit: a dense output more than expandNote times
// its input is announced before the work, and one that is also larger
// than expandLimit bytes needs --allow-expand.
const (
	expandNote  = 100
	expandLimit = 10e9
)

// checkExpansion refuses an output far larger than its input beyond
// expandLimit without --allow-expand, and otherwise returns the line that
// announces it ("" when it is not far larger).
func checkExpansion(in, out string, inSize, outSize int64, allow bool) (string, error) {
	if outSize <= expandNote*max(inSize, 1) {
		return "", nil
	}
	ratio := float64(outSize) / float64(max(inSize, 1))
	if outSize > expandLimit && !allow {
		return "", fmt.Errorf("lowrank: %s: densifying writes %s (%d bytes) to %s, %.0f× the %s input; expected --allow-expand to write an output over 10 GB and more than %d× its input",
			in, humanBytes(outSize), outSize, out, ratio, humanBytes(inSize), expandNote)
	}
	return fmt.Sprintf("densify: %s will be %s (%d bytes), %.0f× the %s input\n", out, humanBytes(outSize), outSize, ratio, humanBytes(inSize)), nil
}

// checkDisk refuses, before the work, an output of need bytes larger than
// the free space of the file system that will hold it (where the system
// says: statfs).
func checkDisk(out string, need int64) error {
	free, ok := diskFree(filepath.Dir(out))
	if !ok || need <= free {
		return nil
	}
	return fmt.Errorf("lowrank: %s: the output needs %s but its file system has %s free; expected more free space (or another -o)", out, humanBytes(need), humanBytes(free))
}

// diskFree is freeSpace (a variable for tests).
var diskFree = freeSpace
