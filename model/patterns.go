package model

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// rank_pattern and alpha_pattern, matched as PEFT matches them
// (peft.utils.other.get_pattern_key): the value of the first key, in the
// order written, for which re.match(rf"(.*\.)?({key})$", module) matches.
//
// PEFT tries every key with a regular expression, for every module. That is
// quadratic (60 000 keys against 10 000 modules), and compiling 60 000
// regular expressions took 3.8 GB. Here:
//
//   - keys with no regular-expression syntax but '.' (PEFT's own configs
//     list module names: "model.layers.0.self_attn.q_proj") go into a trie
//     of their characters from the end, '.' being the wildcard it is in a
//     regular expression; one walk from the end of a module name finds the
//     first such key that matches, in time bounded by the name and the trie;
//   - other keys are compiled only when a module needs them (in order, and
//     only those before the first literal key that matched), each charged
//     to the memory budget by the size of its compiled program;
//   - the regular-expression matches a command may make are bounded
//     (maxPatternMatches, checked before any is made) and every walk of the
//     trie too (maxTrieSteps): an adapter beyond them is refused, naming
//     the count.

// maxPatternMatches bounds regular-expression keys × modules.
const maxPatternMatches = 10_000_000

// maxTrieSteps bounds the trie nodes visited for one command.
const maxTrieSteps = 100_000_000

// patternBytesPerKeyByte is what the trie costs per byte of a literal key
// (node, edge, map overhead), for the memory budget.
const patternBytesPerKeyByte = 64

// patterns is one of rank_pattern and alpha_pattern.
type patterns struct {
	name   string // "rank_pattern" or "alpha_pattern"
	path   string // of the config, for errors
	keys   []string
	values []float64
	// literal keys, by the trie; the others, compiled lazily.
	trie     litTrie
	regexIdx []int // indexes into keys, in order
	compiled []*regexp.Regexp
	mem      Budget
	steps    int
}

// isLiteral reports whether a key has no regular-expression syntax besides
// '.', the wildcard.
func isLiteral(key string) bool {
	return key != "" && !strings.ContainsAny(key, `\^$*+?{}[]|()`)
}

// add records the next key; literal keys go into the trie now, the others
// are only checked to be regular expressions this tool can read.
func (p *patterns) add(key string, value float64) error {
	idx := len(p.keys)
	p.keys = append(p.keys, key)
	p.values = append(p.values, value)
	if isLiteral(key) {
		if err := take(p.mem, int64(len(key))*patternBytesPerKeyByte+64, fmt.Sprintf("%s: %s key %q", p.path, p.name, key)); err != nil {
			return err
		}
		p.trie.add(key, idx)
		return nil
	}
	if _, err := syntax.Parse(`(?:.*\.)?(?:`+key+`)`, syntax.Perl); err != nil {
		return configErr(p.path, "%s key %q is not a regular expression this tool can read: %v", p.name, key, err)
	}
	p.regexIdx = append(p.regexIdx, idx)
	p.compiled = append(p.compiled, nil)
	return nil
}

// checkWork refuses, before any matching, more regular-expression matches
// than maxPatternMatches for n modules.
func (p *patterns) checkWork(n int) error {
	if p != nil && len(p.regexIdx) > 0 && int64(len(p.regexIdx))*int64(n) > maxPatternMatches {
		return configErr(p.path, "%s has %d regular-expression keys and the adapter %d modules: %d matches, more than the %d this tool makes; expected module names as keys (matched without regular expressions)",
			p.name, len(p.regexIdx), n, int64(len(p.regexIdx))*int64(n), maxPatternMatches)
	}
	return nil
}

// match returns the value of the first key matching module.
func (p *patterns) match(module string) (float64, bool, error) {
	if p == nil || len(p.keys) == 0 {
		return 0, false, nil
	}
	first, steps := p.trie.match(module, maxTrieSteps-p.steps)
	p.steps += steps
	if p.steps >= maxTrieSteps {
		return 0, false, configErr(p.path, "matching the %s keys against the modules takes more than %d steps; expected fewer or plainer keys", p.name, maxTrieSteps)
	}
	for j, idx := range p.regexIdx {
		if first >= 0 && idx > first {
			break
		}
		re := p.compiled[j]
		if re == nil {
			key := p.keys[idx]
			if err := take(p.mem, regexCost(key), fmt.Sprintf("%s: compiling %s key %q", p.path, p.name, key)); err != nil {
				return 0, false, err
			}
			var err error
			if re, err = regexp.Compile(`^(?:.*\.)?(?:` + key + `)$`); err != nil {
				return 0, false, configErr(p.path, "%s key %q is not a regular expression this tool can read: %v", p.name, key, err)
			}
			p.compiled[j] = re
		}
		if re.MatchString(module) {
			first = idx
			break
		}
	}
	if first < 0 {
		return 0, false, nil
	}
	return p.values[first], true, nil
}

// regexCost estimates the memory of a compiled regular expression: about
// 4 KiB and 192 bytes per instruction of its program, counted on the parse
// tree with repetitions expanded as the compiler expands them.
func regexCost(key string) int64 {
	re, err := syntax.Parse(`(?:.*\.)?(?:`+key+`)`, syntax.Perl)
	if err != nil {
		return 4 << 10
	}
	return 4<<10 + 192*min(progSize(re), 1<<40/192)
}

func progSize(re *syntax.Regexp) int64 {
	var n int64 = 1
	switch re.Op {
	case syntax.OpLiteral:
		return int64(len(re.Rune)) + 1
	case syntax.OpRepeat:
		m := int64(re.Max)
		if m < 0 {
			m = int64(re.Min) + 1
		}
		return m*progSize(re.Sub[0]) + 1
	}
	for _, s := range re.Sub {
		n += progSize(s)
		if n > 1<<40 {
			return 1 << 40
		}
	}
	return n
}

// litTrie holds literal keys by their characters from the end; '.' is the
// wildcard edge.
type litTrie struct {
	nodes []litNode
	edges map[litEdge]int32
}

type litNode struct {
	dot int32 // child along a '.' (wildcard); 0: none
	end int32 // 1 + index of the first key ending here; 0: none
}

type litEdge struct {
	from int32
	r    rune
}

func (t *litTrie) add(key string, idx int) {
	if t.nodes == nil {
		t.nodes = []litNode{{}}
		t.edges = map[litEdge]int32{}
	}
	rs := []rune(key)
	n := int32(0)
	for i := len(rs) - 1; i >= 0; i-- {
		var next int32
		if rs[i] == '.' {
			if next = t.nodes[n].dot; next == 0 {
				next = int32(len(t.nodes))
				t.nodes = append(t.nodes, litNode{})
				t.nodes[n].dot = next
			}
		} else {
			e := litEdge{n, rs[i]}
			var ok bool
			if next, ok = t.edges[e]; !ok {
				next = int32(len(t.nodes))
				t.nodes = append(t.nodes, litNode{})
				t.edges[e] = next
			}
		}
		n = next
	}
	if t.nodes[n].end == 0 {
		t.nodes[n].end = int32(idx + 1)
	}
}

// match returns the index of the first literal key matching module as the
// regular expression (.*\.)?(key)$ would (a key's '.' matches any
// character but a newline; what precedes the match is empty or ends with
// '.', and holds no newline), or -1; and the nodes it visited, at most
// limit.
func (t *litTrie) match(module string, limit int) (int, int) {
	if t.nodes == nil {
		return -1, 0
	}
	rs := []rune(module)
	firstNL := len(rs) // the first newline, which .* cannot cross
	for i, r := range rs {
		if r == '\n' {
			firstNL = i
			break
		}
	}
	best := -1
	type state struct {
		n   int32
		pos int // runes consumed from the end
	}
	stack := []state{{0, 0}}
	steps := 0
	for len(stack) > 0 && steps < limit {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		steps++
		if e := t.nodes[s.n].end; e != 0 && (best < 0 || int(e-1) < best) {
			rest := len(rs) - s.pos
			if rest == 0 || rs[rest-1] == '.' && firstNL >= rest-1 {
				best = int(e - 1)
			}
		}
		if s.pos == len(rs) {
			continue
		}
		r := rs[len(rs)-1-s.pos]
		if d := t.nodes[s.n].dot; d != 0 && r != '\n' {
			stack = append(stack, state{d, s.pos + 1})
		}
		if r != '.' {
			if c, ok := t.edges[litEdge{s.n, r}]; ok {
				stack = append(stack, state{c, s.pos + 1})
			}
		}
	}
	return best, steps
}
