package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/lowrank-go/lowrank/safetensors"
)

// terminalSafe reports the first byte sequence of out a terminal would act
// on: ESC, another C0 control but newline and tab, DEL, a C1 control or a
// bidirectional override.
func terminalSafe(out string) string {
	for _, r := range out {
		if r == '\n' || r == '\t' {
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return string(r)
		}
	}
	return ""
}

// Issue 9, point 14: ESC sequences and newlines in tensor names and
// metadata were printed raw by info and the summary table (clear the
// screen, set the terminal's title, forge lines); forged lowrank metadata
// was shown as fact; the CSV report was open to formula injection.
func TestNamesAndMetadataPrintedEscaped(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "evil.safetensors")
	names := []string{"\x1b]0;pwned\x07title", "\x1b[2Jclear", "two\nlines\nlowrank: forged", "rtl\u202eexe.fdp", "c1\u009b31m", "=cmd|' /C calc'!A0", "+1+2", "-2", "@SUM(A1)", "\ttab"}
	var ts []tensor
	for i, n := range names {
		ts = append(ts, tensor{name: n, dt: safetensors.F32, shape: []int{3, 2}, vals: []float64{1, 2, 3, float64(i), 5, 7}})
	}
	forged := `{"version":1,"policy":"rank=1\u001b[2J","split":"us","tensors":{"\u001b[31mred":{"shape":[3,2],"rank":1,"rel_error":0,"energy":1,"dtype":"F32"}}}`
	writeST(t, in, map[string]string{"note\x1b[5m": "blink\x1b[5m\nforged line", metaKey: forged}, ts...)

	info := mustCLI(t, "info", in)
	if c := terminalSafe(info); c != "" {
		t.Errorf("info prints %q raw:\n%s", c, info)
	}
	for _, want := range []string{`"\x1b]0;pwned\atitle"`, `"two\nlines\nlowrank: forged"`, `"rtl\u202eexe.fdp"`, `"c1\u009b31m"`, `"note\x1b[5m": "blink\x1b[5m\nforged line"`,
		"lowrank metadata, as recorded by the file (not verified): policy \"rank=1\\x1b[2J\"", `"\x1b[31mred"`, "metadata (as recorded in the file)"} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %s:\n%s", want, info)
		}
	}
	// Every line of the tensor table is one tensor: none was forged.
	if strings.Contains(info, "\nlowrank: forged") || strings.Contains(info, "\nforged line") {
		t.Errorf("a name or value forged a line:\n%s", info)
	}

	rep := filepath.Join(dir, "r.csv")
	table := mustCLI(t, "factorize", in, "-o", filepath.Join(dir, "f.safetensors"), "--rank", "1", "--report", rep)
	if c := terminalSafe(table); c != "" {
		t.Errorf("the summary table prints %q raw:\n%s", c, table)
	}
	f, err := os.Open(rep)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[1:] {
		if c := r[0]; c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			t.Errorf("CSV cell %q starts a formula", c)
		}
	}
	found := 0
	for _, r := range recs {
		switch r[0] {
		case "'=cmd|' /C calc'!A0", "'+1+2", "'-2", "'@SUM(A1)", "'\ttab":
			found++
		}
	}
	if found != 5 {
		t.Errorf("%d of 5 formula-like names quoted with a leading ': %q", found, recs)
	}

	// adapter_config.json text is shown with C1 controls and overrides
	// escaped (still valid JSON).
	p := makePair(t, dir, safetensors.F32)
	ad := filepath.Join(dir, "ad")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--rank", "2", "--quiet")
	cfg, _ := os.ReadFile(filepath.Join(ad, peftConfigName))
	cfg = []byte(strings.Replace(string(cfg), `"bias": "none"`, "\"bias\": \"none\u009b2J\u202e\"", 1))
	os.WriteFile(filepath.Join(ad, peftConfigName), cfg, 0o644)
	out := mustCLI(t, "info", ad)
	if c := terminalSafe(out); c != "" || !strings.Contains(out, `"none\u009b2J\u202e"`) {
		t.Errorf("info of the adapter prints %q raw, or not escaped:\n%s", c, out)
	}
}
