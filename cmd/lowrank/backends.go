package main

import (
	"fmt"
	"io"

	"github.com/lowrank-go/lowrank"
)

func runBackends(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backends", "backends", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("backends takes no arguments, got %q", pos)
	}
	if err := parsed("backends", nil); err != nil {
		return err
	}
	infos := lowrank.Backends()
	for _, b := range infos {
		state := "available"
		if !b.Available {
			state = "not available: " + b.Reason
		}
		if b.Default {
			state += " (default)"
		}
		fmt.Fprintf(stdout, "%-5s %s\n", b.Name, state)
		for _, d := range b.Details {
			fmt.Fprintf(stdout, "      %s\n", d)
		}
	}
	if _, err := lowrank.DefaultBackend(); err != nil {
		return err
	}
	if why := lowrank.AutoReason(); why != "" {
		fmt.Fprintf(stdout, "\nauto passed over %s\n", why)
	}
	fmt.Fprintf(stdout, "\n%s\n", budgetLine())
	return nil
}
