// Command gen writes lowrank's hostile-input suite (package hostile) to a
// folder: every case that is not too big to check in, and README.md.
//
//	go run ./internal/testkit/hostile/gen -o testdata/hostile
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lowrank-go/lowrank/internal/testkit/hostile"
)

func main() {
	out := flag.String("o", "testdata/hostile", "output `DIR` (its previous contents are replaced)")
	flag.Parse()
	if err := write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, c := range hostile.Cases() {
		if c.Big {
			continue
		}
		for name, b := range c.Files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return err
			}
		}
	}
	return os.WriteFile(filepath.Join(dir, "README.md"), hostile.Manifest(), 0o644)
}
