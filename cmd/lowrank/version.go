package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// readBuildInfo is runtime/debug.ReadBuildInfo (replaced by tests).
var readBuildInfo = debug.ReadBuildInfo

// versionLine returns what lowrank --version prints: the module's version
// (a tag, a pseudo-version, or "(devel)" for a build from a checkout), the
// VCS revision, its time and whether the tree had local changes, and the
// Go version, all from the build information the Go toolchain embeds.
func versionLine() string {
	bi, ok := readBuildInfo()
	if !ok {
		return "lowrank (no build information: built without module support)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	parts := []string{"lowrank " + v}
	var rev, when, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		r := "revision " + rev
		if when != "" {
			r += " (" + when + ")"
		}
		if modified == "true" {
			r += ", with local changes"
		}
		parts = append(parts, r)
	} else {
		parts = append(parts, "no VCS revision recorded")
	}
	if bi.GoVersion != "" {
		parts = append(parts, bi.GoVersion)
	}
	return strings.Join(parts, ", ")
}

func printVersion(w io.Writer) { fmt.Fprintln(w, versionLine()) }
