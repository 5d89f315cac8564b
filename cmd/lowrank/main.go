// Command lowrank factorizes weight matrices into low-rank factors and
// applies them, on a GPU when one is usable and on the CPU otherwise.
//
// Usage:
//
//	lowrank factorize IN.safetensors -o OUT.safetensors [--rank N | --energy E | --tol T | --ratio R]
//	lowrank extract --base BASE.safetensors --tuned TUNED.safetensors -o ADAPTER_DIR
//	lowrank merge --base BASE.safetensors --adapter ADAPTER_DIR -o OUT.safetensors [--unmerge]
//	lowrank info [--json] FILE.safetensors|ADAPTER_DIR ...
//	lowrank demo [--d 10 --k 10 --rank 2 --seed 42]
//	lowrank backends
//	lowrank help [command]
//	lowrank --version
//
// Every error is printed as one line starting with "lowrank:" on stderr,
// and the exit code is 1 (2 for a usage error).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// command is one subcommand of the tool.
type command struct {
	summary string
	// run executes the command with its arguments (after the command
	// name), writing results to stdout and diagnostics to stderr.
	run func(args []string, stdout, stderr io.Writer) error
}

// commands is the tool's command table; each command lives in its own
// file.
var commands = map[string]command{
	"demo":      {summary: "factorize a small rank-r matrix step by step, as the notebook does", run: runDemo},
	"backends":  {summary: "list the compute backends, whether each is usable, and why not", run: runBackends},
	"factorize": {summary: "replace each weight matrix W of a .safetensors file by factors NAME.A, NAME.B", run: runFactorize},
	"extract":   {summary: "extract a LoRA adapter (PEFT or kohya) from a base and a fine-tuned model", run: runExtract},
	"merge":     {summary: "merge a LoRA adapter into a base model (or back out of it), or densify a factorized file", run: runMerge},
	"join":      {summary: "finish a folder output written in parts (--shard I/N): check every part, write the index", run: runJoin},
	"info":      {summary: "show the tensors and metadata of a .safetensors file or an adapter folder", run: runInfo},
}

func main() { os.Exit(mainCode(os.Args[1:])) }

// mainCode runs the command line args as main does: SIGINT and SIGTERM
// cancel cmdContext, so that a file command stops, removes its partial
// outputs and reports "interrupted" instead of dying half-way.
func mainCode(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmdContext = ctx
	return run(args, os.Stdout, os.Stderr)
}

// afterParse, when set (by tests), is called by every command once its
// command line is parsed and checked, before it touches any file or
// computes anything; a non-nil error stops the command there.
var afterParse func(cmd string, parsed any) error

// parsed calls afterParse.
func parsed(cmd string, v any) error {
	if afterParse != nil {
		return afterParse(cmd, v)
	}
	return nil
}

// errUsage marks an error in the command line itself (exit code 2).
var errUsage = errors.New("usage")

// usageError is a command-line error; its text starts with "lowrank:".
type usageError struct{ msg string }

func (e *usageError) Error() string   { return "lowrank: " + e.msg }
func (e *usageError) Is(t error) bool { return t == errUsage }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// lockedWriter serializes writes to a writer that is not safe for
// concurrent use: warnings come from the goroutines that compute tensors
// (a device left out under --devices, for one). An *os.File needs none
// (each Fprintf is one write, and the file serializes them), and is left
// as it is so that the progress bar still sees a terminal.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func concurrentSafe(w io.Writer) io.Writer {
	if _, ok := w.(*os.File); ok || w == nil {
		return w
	}
	return &lockedWriter{w: w}
}

// run executes the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if stdout == stderr {
		stdout = concurrentSafe(stdout)
		stderr = stdout
	} else {
		stdout, stderr = concurrentSafe(stdout), concurrentSafe(stderr)
	}
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	name := args[0]
	if name == "--version" || name == "-version" || name == "version" {
		printVersion(stdout)
		return 0
	}
	if name == "help" || name == "-h" || name == "--help" || name == "-help" {
		if len(args) > 1 {
			if _, ok := commands[args[1]]; ok {
				_ = commands[args[1]].run([]string{"-h"}, stdout, stdout)
				return 0
			}
		}
		printUsage(stdout)
		return 0
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "lowrank: unknown command %q; expected one of %s (see lowrank help)\n", name, strings.Join(commandNames(), ", "))
		return 2
	}
	err := cmd.run(args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp), errors.Is(err, errFinished):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, oneLine(err))
		return 2
	default:
		fmt.Fprintln(stderr, oneLine(err))
		return 1
	}
}

// oneLine returns err's text on one line, starting with "lowrank:".
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if !strings.HasPrefix(s, "lowrank:") {
		s = "lowrank: " + s
	}
	return s
}

func commandNames() []string {
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "lowrank turns weight matrices into low-rank factors W ≈ B·A and applies them.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: lowrank <command> [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, n := range commandNames() {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'lowrank <command> -h' for the flags of a command, 'lowrank --version' for the build.")
	fmt.Fprintln(w, "LOWRANK_BACKEND=auto|cpu|cuda overrides the backend choice.")
}

// newFlags returns a FlagSet for a command whose usage goes to w.
func newFlags(name, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: lowrank %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args with fs, allowing positional arguments before,
// between and after flags (lowrank factorize IN -o OUT), and returns the
// positional ones. A "--" ends flag parsing.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	// The flag package prints the error and the usage on every parse
	// error; we want one "lowrank:" line instead, and the usage only for
	// -h.
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	defer func() { fs.SetOutput(out); fs.Usage = usage }()
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(out)
				usage()
				return nil, err
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
