module github.com/lowrank-go/lowrank

go 1.26.8

require (
	golang.org/x/sys v0.46.0
	gonum.org/v1/gonum v0.17.0
)
