package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lowrank-go/lowrank/safetensors"
)

// patternAdapter writes an adapter for module fc1 whose rank_pattern has n
// keys made by key(i), then one for fc1.
func patternAdapter(t *testing.T, dir string, n int, key func(i int) string) string {
	t.Helper()
	ad := filepath.Join(dir, "ad")
	os.Mkdir(ad, 0o755)
	var b strings.Builder
	b.WriteString(`{"peft_type":"LORA","r":4,"lora_alpha":2,"rank_pattern":{`)
	for i := range n {
		fmt.Fprintf(&b, "%q:4,", key(i))
	}
	b.WriteString(`"fc1":2}}`)
	os.WriteFile(filepath.Join(ad, peftConfigName), []byte(b.String()), 0o644)
	rng := rand.New(rand.NewPCG(1, 1))
	writeST(t, filepath.Join(ad, peftWeightsName), nil,
		tensor{name: peftKey("fc1", "A"), dt: safetensors.F32, shape: []int{2, 6}, vals: gauss(rng, 12, 1)},
		tensor{name: peftKey("fc1", "B"), dt: safetensors.F32, shape: []int{8, 2}, vals: gauss(rng, 16, 1)})
	return ad
}

// Issue 9, point 9: an adapter_config.json with 60 000 long pattern keys
// took 3.8 GB (every key compiled as a regular expression up front) and
// --max-memory 256MiB did not bound it. Literal keys now go into a trie
// (about 31 bytes per key byte, charged at 64), regular expressions are
// compiled only when needed and charged to the budget, and their matches
// are bounded. Peak resident size measured in a subprocess.
func TestManyPatternKeysBounded(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.safetensors")
	rng := rand.New(rand.NewPCG(2, 2))
	writeST(t, base, nil, tensor{name: "fc1.weight", dt: safetensors.F32, shape: []int{8, 6}, vals: gauss(rng, 48, 1)})
	lit := patternAdapter(t, filepath.Join(dir), 60_000, func(i int) string {
		return fmt.Sprintf("model.layers.%d.self_attn.q_proj_%06d", i%100, i)
	})
	out := filepath.Join(dir, "m.safetensors")
	mustCLI(t, "merge", "--base", base, "--adapter", lit, "-o", out, "--quiet", "--max-memory", "256MiB")
	if !testing.Short() && peakRSS() > 0 {
		hwm := filepath.Join(dir, "hwm")
		cmd, _, stderr := lowrankProcess(t, []string{"LOWRANK_TEST_HWM=" + hwm}, "merge", "--base", base, "--adapter", lit, "-o", out, "--quiet", "--force", "--max-memory", "256MiB")
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %s", err, stderr)
		}
		b, _ := os.ReadFile(hwm)
		n, _ := strconv.ParseInt(string(b), 10, 64)
		t.Logf("60 000 literal keys (2.3 MB of keys): peak RSS %s", humanBytes(n))
		if n > 256<<20 {
			t.Errorf("peak RSS %s > --max-memory 256MiB", humanBytes(n))
		}
	}
	// 60 000 regular-expression keys that match nothing: compiled one by
	// one as the module needs them, each charged; a small budget runs out
	// with a clear line instead of growing.
	rx := filepath.Join(dir, "rx")
	os.Mkdir(rx, 0o755)
	reAd := patternAdapter(t, rx, 60_000, func(i int) string { return fmt.Sprintf(`x%d\.[0-9]+`, i) })
	assertFails(t, dir, []string{"rx", filepath.Join("rx", "ad"), filepath.Join("rx", "ad", peftConfigName), filepath.Join("rx", "ad", peftWeightsName)},
		[]string{"merge", "--base", base, "--adapter", reAd, "-o", filepath.Join(dir, "m2.safetensors"), "--quiet", "--max-memory", "64MiB"},
		"compiling rank_pattern key", "but --max-memory 64.0 MiB leaves")
	// With room, the same adapter merges (its last key, a literal, is the
	// one for fc1: every regular expression before it was tried).
	mustCLI(t, "merge", "--base", base, "--adapter", reAd, "-o", filepath.Join(dir, "m3.safetensors"), "--quiet")
}

// Issue 9, point 9: kohya key matching was quadratic in the name length
// (every underscore split looked up): an 8 MB kohya file against a 10 000-
// tensor base took 2 min 41 s. Names are now looked up once per prefix.
// The time is logged, not asserted.
func TestKohyaMatchingScales(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 1000
	}
	dir := t.TempDir()
	long := strings.Repeat("very_long_module_path.", 16)
	var bts, kts []tensor
	one := []float64{1}
	for i := range n {
		m := fmt.Sprintf("%sm%d", long, i)
		bts = append(bts, tensor{name: m + ".weight", dt: safetensors.F32, shape: []int{1, 1}, vals: one})
		k := kohyaName("lora_unet", m)
		kts = append(kts, tensor{name: k + ".lora_down.weight", dt: safetensors.F32, shape: []int{1, 1}, vals: one},
			tensor{name: k + ".lora_up.weight", dt: safetensors.F32, shape: []int{1, 1}, vals: one})
	}
	base, lora := filepath.Join(dir, "base.safetensors"), filepath.Join(dir, "lora.safetensors")
	writeST(t, base, nil, bts...)
	writeST(t, lora, nil, kts...)
	st, _ := os.Stat(lora)
	start := time.Now()
	mustCLI(t, "merge", "--base", base, "--adapter", lora, "-o", filepath.Join(dir, "m.safetensors"), "--kohya-prefix", "lora_unet", "--quiet")
	t.Logf("%d kohya modules (%s file, names of %d bytes) merged in %v", n, humanBytes(st.Size()), len(kohyaName("lora_unet", long)), time.Since(start).Round(time.Millisecond))
}
