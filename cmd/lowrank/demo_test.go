package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestDemo checks the notebook's steps, in order, and its two counts in
// its exact wording.
func TestDemo(t *testing.T) {
	code, out, errOut := runCLI(t, "demo")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	order := []string{
		"W (10×10",
		"Rank of W: 2",
		"U: (10, 10)  S: (10)  V: (10, 10)",
		"U_r = U[:, :2]        shape (10, 2)",
		"S_r = diag(S[:2])     shape (2, 2)",
		"V_r = V[:, :2]ᵀ       shape (2, 10)",
		"B = U_r·S_r           shape (10, 2)",
		"A = V_r               shape (2, 10)",
		"Original y using W:",
		"y' computed using B·(A·x):",
		"max |y − y'| = ",
		"Total parameters in original : 100\n",
		"Total parameters in B and A : 40\n",
		"backend: cpu",
	}
	rest := out
	for _, s := range order {
		i := strings.Index(rest, s)
		if i < 0 {
			t.Fatalf("demo output lacks %q after the previous step:\n%s", s, out)
		}
		rest = rest[i+len(s):]
	}
	// The dense and the factorized outputs print the same numbers.
	y := regexp.MustCompile(`Original y using W:\n(.*)\n`).FindStringSubmatch(out)
	yp := regexp.MustCompile(`y' computed using B·\(A·x\):\n(.*)\n`).FindStringSubmatch(out)
	if y == nil || yp == nil || y[1] != yp[1] {
		t.Errorf("y and y' print differently:\n%s", out)
	}
	m := regexp.MustCompile(`max \|y − y'\| = (\S+)`).FindStringSubmatch(out)
	if v, err := strconv.ParseFloat(m[1], 64); err != nil || v > 1e-10 {
		t.Errorf("max |y − y'| = %s; want ≤ 1e-10", m[1])
	}
}

func TestDemoFlags(t *testing.T) {
	code, out, errOut := runCLI(t, "demo", "--d", "30", "--k", "12", "--rank", "3", "--seed", "7", "--f32")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, s := range []string{"W (30×12", "Rank of W: 3", "Total parameters in original : 360\n", "Total parameters in B and A : 126\n"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q", s)
		}
	}
}

// TestUsageErrors: a bad command line exits non-zero with one lowrank:
// line on stderr.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--rank", "11"},
		{"demo", "--d", "0"},
		{"demo", "--bogus"},
		{"demo", "extra"},
		{"frobnicate"},
		{"backends", "x"},
		{},
	} {
		code, out, errOut := runCLI(t, args...)
		if code == 0 {
			t.Errorf("%q: exit 0", args)
			continue
		}
		if len(args) == 0 {
			continue // prints the usage
		}
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "lowrank: ") {
			t.Errorf("%q: stderr %q; want one line starting with \"lowrank: \"", args, errOut)
		}
		if out != "" {
			t.Errorf("%q: wrote %q to stdout", args, out)
		}
	}
}

func TestBackends(t *testing.T) {
	code, out, errOut := runCLI(t, "backends")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !regexp.MustCompile(`(?m)^cpu\s+available`).MatchString(out) {
		t.Errorf("cpu not listed as available:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^cuda\s+(available|not available: \S)`).MatchString(out) {
		t.Errorf("cuda not listed with its state and reason:\n%s", out)
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := runCLI(t, "help")
	if code != 0 || !strings.Contains(out, "demo") || !strings.Contains(out, "backends") {
		t.Errorf("help: exit %d, output %q", code, out)
	}
	code, out, _ = runCLI(t, "demo", "-h")
	if code != 0 {
		t.Errorf("demo -h: exit %d", code)
	}
	_ = out
}
