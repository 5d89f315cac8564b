package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// errParsed stops a command once its command line is parsed (afterParse).
var errParsed = errors.New("lowrank: parsed")

// FuzzCommandLine runs the command table on arbitrary argument lists, up
// to the point where a command has parsed and checked them (afterParse
// stops it before it touches a file). Whatever the arguments: no panic;
// exit 0 only for -h/help; every failure is one stderr line starting with
// "lowrank:", exit 2 for a command-line mistake; and what a command
// accepted satisfies its checks (a rank policy, --jobs ≥ 1, a known
// dtype, --max-memory ≥ 0, an output path).
func FuzzCommandLine(f *testing.F) {
	seeds := []struct {
		cmd  uint8
		args string
	}{
		{0, "in.safetensors\x00-o\x00out.safetensors"},
		{0, "in.safetensors\x00-o\x00out.safetensors\x00--rank\x008\x00--round\x0064\x00--dtype\x00bf16\x00--jobs\x004\x00--max-memory\x002GiB"},
		{0, "--energy=0.95\x00--tol\x000.01\x00x\x00-o\x00y"},
		{0, "x\x00-o\x00y\x00--method\x00randomized\x00--oversample\x00-1\x00--seed\x0018446744073709551615"},
		{0, "x\x00-o\x00y\x00--include\x00(\x00--report\x00r.txt"},
		{0, "x\x00-o\x00y\x00--max-memory\x001.5 gb\x00--ratio\x000\x00--\x00-z"},
		{1, "--base\x00b\x00--tuned\x00t\x00-o\x00ad\x00--format\x00kohya\x00--kohya-prefix\x00\x00--split\x00us"},
		{1, "--base\x00b\x00--tuned\x00t\x00-o\x00ad\x00--max-memory\x00-3\x00--backend\x00tpu"},
		{2, "--base\x00b\x00--adapter\x00a\x00-o\x00m\x00--unmerge\x00--jobs\x000"},
		{2, "f.safetensors\x00-o\x00d.safetensors\x00--max-memory\x00512MiB\x00--report\x00r.CSV"},
		{3, "a\x00b"},
		{3, ""},
		{4, "--d\x004097\x00--rank\x000"},
		{4, "--d\x003\x00--k\x003\x00--rank\x003\x00--f32"},
		{5, "-h"},
		{6, "factorize"},
		{7, "--rank"},
	}
	for _, s := range seeds {
		f.Add(s.cmd, s.args)
	}
	// Each input runs in an empty folder, where nothing may be created
	// (not f.Chdir: the seed corpus is read from testdata after this).
	empty := f.TempDir()
	names := []string{"factorize", "extract", "merge", "info", "demo", "backends", "help", "nosuchcommand"}
	f.Fuzz(func(t *testing.T, cmd uint8, argv string) {
		t.Chdir(empty)
		args := []string{names[int(cmd)%len(names)]}
		if argv != "" {
			args = append(args, strings.Split(argv, "\x00")...)
		}
		var got any
		var gotCmd string
		afterParse = func(c string, v any) error { gotCmd, got = c, v; return errParsed }
		defer func() { afterParse = nil }()
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		stderr := errb.String()
		switch {
		case code == 0:
			if got != nil {
				t.Fatalf("%q: exit 0 after parsing", args)
			}
		case got != nil:
			if stderr != errParsed.Error()+"\n" {
				t.Fatalf("%q: parsed, then stderr %q", args, stderr)
			}
		default:
			if !strings.HasPrefix(stderr, "lowrank: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
				t.Fatalf("%q: exit %d with stderr %q; want one line starting with \"lowrank: \"", args, code, stderr)
			}
			if code != 1 && code != 2 {
				t.Fatalf("%q: exit %d", args, code)
			}
		}
		if s, ok := got.(*settings); ok {
			if s.jobs < 1 || s.maxMemory < 0 || s.output == "" || (gotCmd != "merge") != (s.policy.String() != "none") {
				t.Fatalf("%q accepted with jobs %d, max-memory %d, output %q, policy %v", args, s.jobs, s.maxMemory, s.output, s.policy)
			}
			if s.dtype != "" && s.dtype != safetensors.F32 && s.dtype != safetensors.F16 && s.dtype != safetensors.BF16 {
				t.Fatalf("%q accepted with dtype %q", args, s.dtype)
			}
			if ext := strings.ToLower(filepath.Ext(s.report)); s.report != "" && ext != ".json" && ext != ".csv" {
				t.Fatalf("%q accepted with report %q", args, s.report)
			}
		}
		if entries, _ := os.ReadDir("."); len(entries) > 0 {
			t.Fatalf("%q created %s", args, entries[0].Name())
		}
	})
}
