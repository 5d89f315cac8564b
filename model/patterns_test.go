package model

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// Moved here from cmd/lowrank with the pattern matching they test.

// pefts picks the first key as PEFT does: re.match(rf"(.*\.)?({key})$").
func pefts(keys []string, module string) int {
	for i, k := range keys {
		if regexp.MustCompile(`^(?:.*\.)?(?:` + k + `)$`).MatchString(module) {
			return i
		}
	}
	return -1
}

// The trie of literal keys and the lazily compiled others pick exactly the
// key PEFT's loop of regular expressions picks: '.' as a wildcard, the
// dot boundary, key order, newlines.
func TestPatternsMatchLikePEFT(t *testing.T) {
	cases := []struct {
		keys    []string
		modules []string
	}{
		{[]string{"fc1", "encoder.fc1"}, []string{"fc1", "encoder.fc1", "decoder.fc1", "xfc1", "fc1.x", "a.b.fc1"}},
		{[]string{"encoder.fc1", "fc1"}, []string{"encoder.fc1", "decoder.fc1", "encoderXfc1", "x.encoderXfc1"}},
		{[]string{"layer.1", "layers.1"}, []string{"layer21", "m.layer.1", "m.layers.1", "layerx1", "m.layer\n1"}},
		{[]string{"q_proj", `layers\.[0-9]+\.q_proj`, "k_proj"}, []string{"model.layers.3.q_proj", "k_proj", "v_proj"}},
		{[]string{`layers\.[0-9]+\.q_proj`, "q_proj"}, []string{"model.layers.3.q_proj", "q_proj", "x\n.q_proj", "x.\nq_proj"}},
		{[]string{"é.ü", ".", ".."}, []string{"éxü", "a.éü", "a", "ab", "a.b.c", "a\nb"}},
	}
	for _, c := range cases {
		p := &patterns{name: "rank_pattern", path: "cfg", mem: testBudget()}
		for i, k := range c.keys {
			if err := p.add(k, float64(i+1)); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range c.modules {
			want := pefts(c.keys, m)
			v, ok, err := p.match(m)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (want >= 0) || ok && int(v) != want+1 {
				t.Errorf("keys %q, module %q: got key %v (%v); PEFT takes %d", c.keys, m, v-1, ok, want)
			}
		}
	}
	// Random keys and modules over a small alphabet.
	rng := rand.New(rand.NewPCG(7, 8))
	word := func(alpha string) string {
		b := make([]byte, 1+rng.IntN(5))
		for i := range b {
			b[i] = alpha[rng.IntN(len(alpha))]
		}
		return string(b)
	}
	for range 3000 {
		var keys []string
		for range 1 + rng.IntN(6) {
			keys = append(keys, word("ab.\n"))
		}
		p := &patterns{name: "alpha_pattern", path: "cfg", mem: testBudget()}
		for i, k := range keys {
			p.add(k, float64(i+1))
		}
		for range 10 {
			m := word("ab.\n")
			want := pefts(keys, m)
			v, ok, _ := p.match(m)
			if ok != (want >= 0) || ok && int(v) != want+1 {
				t.Fatalf("keys %q, module %q: got %v (%v); PEFT takes %d", keys, m, v-1, ok, want)
			}
		}
	}
}

// Regular-expression keys × modules beyond maxPatternMatches are refused
// before any matching.
func TestPatternWorkBounded(t *testing.T) {
	p := &patterns{name: "rank_pattern", path: "cfg", mem: testBudget()}
	for i := range 1000 {
		p.add(fmt.Sprintf(`m%d\.[0-9]`, i), 2)
	}
	if err := p.checkWork(maxPatternMatches / 1000); err != nil {
		t.Errorf("within the bound: %v", err)
	}
	err := p.checkWork(maxPatternMatches/1000 + 1)
	if err == nil || !strings.Contains(err.Error(), "1000 regular-expression keys and the adapter 10001 modules") {
		t.Errorf("beyond the bound: %v", err)
	}
}
