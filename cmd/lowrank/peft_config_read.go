package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"unicode/utf8"
)

// peftConfig is what merge needs from adapter_config.json.
type peftConfig struct {
	path         string
	PeftType     string
	R            int
	LoraAlpha    float64
	UseRslora    bool
	FanInFanOut  bool
	rankPattern  []patternEntry
	alphaPattern []patternEntry
	raw          []byte
}

// patternEntry is one rank_pattern or alpha_pattern key, compiled as PEFT
// matches it: the key is a regular expression that must match the module
// name, or a dot-separated suffix of it (peft.utils.other.get_pattern_key).
type patternEntry struct {
	key   string
	re    *regexp.Regexp
	value float64
}

func configErr(path, format string, args ...any) error {
	return fmt.Errorf("lowrank: %s: %s", path, fmt.Sprintf(format, args...))
}

// readPEFTConfig reads and checks an adapter folder's adapter_config.json.
func readPEFTConfig(dir string) (*peftConfig, error) {
	path := filepath.Join(dir, peftConfigName)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("lowrank: %s: %s not found; expected a PEFT adapter folder holding %s and %s", dir, peftConfigName, peftConfigName, peftWeightsName)
		}
		return nil, fmt.Errorf("lowrank: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("lowrank: %s: %w", path, unwrapPathErr(err))
	}
	if len(raw) > maxConfigBytes {
		return nil, configErr(path, "larger than %d bytes; expected a small JSON file", maxConfigBytes)
	}
	return parsePEFTConfig(raw, path)
}

func parsePEFTConfig(raw []byte, path string) (*peftConfig, error) {
	if !utf8.Valid(raw) {
		return nil, configErr(path, "not valid UTF-8; expected a UTF-8 JSON object")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, configErr(path, "not a JSON object: %v", err)
	}
	c := &peftConfig{path: path, raw: raw}
	str := func(k string) (string, error) {
		v, ok := top[k]
		if !ok || string(v) == "null" {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", configErr(path, "%q is %s; expected a string", k, v)
		}
		return s, nil
	}
	boolean := func(k string) (bool, error) {
		v, ok := top[k]
		if !ok || string(v) == "null" {
			return false, nil
		}
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return false, configErr(path, "%q is %s; expected true or false", k, v)
		}
		return b, nil
	}
	num := func(k string) (float64, bool, error) {
		v, ok := top[k]
		if !ok || string(v) == "null" {
			return 0, false, nil
		}
		var x float64
		if err := json.Unmarshal(v, &x); err != nil || math.IsInf(x, 0) {
			return 0, false, configErr(path, "%q is %s; expected a number", k, v)
		}
		return x, true, nil
	}
	var err error
	if c.PeftType, err = str("peft_type"); err != nil {
		return nil, err
	}
	if c.PeftType != "LORA" {
		return nil, configErr(path, "peft_type is %q; expected \"LORA\" (other PEFT methods are not supported)", c.PeftType)
	}
	r, ok, err := num("r")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, configErr(path, "\"r\" is missing; expected a positive integer")
	}
	if r < 1 || r != math.Trunc(r) || r > maxRank {
		return nil, configErr(path, "\"r\" is %v; expected a positive integer ≤ %d", r, maxRank)
	}
	c.R = int(r)
	alpha, ok, err := num("lora_alpha")
	if err != nil {
		return nil, err
	}
	if !ok {
		alpha = 8 // LoraConfig's default
	}
	c.LoraAlpha = alpha
	if c.UseRslora, err = boolean("use_rslora"); err != nil {
		return nil, err
	}
	if c.FanInFanOut, err = boolean("fan_in_fan_out"); err != nil {
		return nil, err
	}
	if dora, err := boolean("use_dora"); err != nil {
		return nil, err
	} else if dora {
		return nil, configErr(path, "use_dora is true; DoRA adapters are not supported, expected a plain LoRA adapter")
	}
	for _, p := range []struct {
		key string
		dst *[]patternEntry
	}{{"rank_pattern", &c.rankPattern}, {"alpha_pattern", &c.alphaPattern}} {
		if *p.dst, err = parsePattern(top[p.key], p.key, path); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// parsePattern reads a rank_pattern or alpha_pattern object, keeping the
// order of its keys (PEFT takes the first key that matches).
func parsePattern(raw json.RawMessage, name, path string) ([]patternEntry, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	bad := func() error { return configErr(path, "%q is not an object of module names to numbers", name) }
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, bad()
	}
	var out []patternEntry
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, bad()
		}
		vt, err := dec.Token()
		if err != nil {
			return nil, bad()
		}
		k, _ := kt.(string)
		n, ok := vt.(json.Number)
		if !ok {
			return nil, configErr(path, "%s[%q] is %v; expected a number", name, k, vt)
		}
		v, err := n.Float64()
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return nil, configErr(path, "%s[%q] is %v; expected a positive number", name, k, n)
		}
		if name == "rank_pattern" && (v != math.Trunc(v) || v > maxRank) {
			return nil, configErr(path, "%s[%q] is %v; expected a positive integer rank ≤ %d", name, k, n, maxRank)
		}
		re, err := regexp.Compile(`^(?:.*\.)?(?:` + k + `)$`)
		if err != nil {
			return nil, configErr(path, "%s key %q is not a regular expression this tool can read: %v", name, k, err)
		}
		out = append(out, patternEntry{key: k, re: re, value: v})
	}
	return out, nil
}

func matchPattern(ps []patternEntry, module string) (float64, bool) {
	for _, p := range ps {
		if p.re.MatchString(module) {
			return p.value, true
		}
	}
	return 0, false
}

// scaling returns the rank PEFT expects for module and its scaling:
// lora_alpha/r, or lora_alpha/√r with use_rslora, with r and lora_alpha
// taken from rank_pattern and alpha_pattern when a key matches.
func (c *peftConfig) scaling(module string) (int, float64) {
	r := float64(c.R)
	if v, ok := matchPattern(c.rankPattern, module); ok {
		r = v
	}
	alpha := c.LoraAlpha
	if v, ok := matchPattern(c.alphaPattern, module); ok {
		alpha = v
	}
	if c.UseRslora {
		return int(r), alpha / math.Sqrt(r)
	}
	return int(r), alpha / r
}
