//go:build !race

package lowrank

const raceEnabled = false
