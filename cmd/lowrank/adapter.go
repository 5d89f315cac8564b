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
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/lowrank-go/lowrank/safetensors"
)

// PEFT's adapter folder layout (huggingface/peft, utils/save_and_load.py and
// tuners/lora/config.py).
const (
	peftConfigName  = "adapter_config.json"
	peftWeightsName = "adapter_model.safetensors"
	peftPrefix      = "base_model.model."
	maxConfigBytes  = 16 << 20
	// maxRank is the largest r (or rank_pattern value) accepted.
	maxRank = 1 << 30
)

// peftKey returns the adapter key of a LoRA matrix ("A" or "B") of module.
func peftKey(module, ab string) string {
	return peftPrefix + module + ".lora_" + ab + ".weight"
}

// moduleOf returns the module a weight tensor belongs to: its name without
// the trailing ".weight".
func moduleOf(tensor string) (string, bool) {
	m, ok := strings.CutSuffix(tensor, ".weight")
	return m, ok && m != ""
}

// kohyaName returns the kohya-style name of a module: prefix, "_", and the
// module path with dots turned into underscores, as kohya-ss/sd-scripts
// names its LoRA modules ("lora_unet_down_blocks_0_…").
func kohyaName(prefix, module string) string {
	return prefix + "_" + strings.ReplaceAll(module, ".", "_")
}

// ---- adapter_config.json ----

// kv is one entry of a JSON object whose order matters.
type kv struct {
	Key   string
	Value any
}

// ordered is a JSON object written in the order of its entries.
type ordered []kv

func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.Key)
		v, err := json.Marshal(e.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// peftModule is one module of an extracted adapter.
type peftModule struct {
	name string
	rank int
}

// specificFirst orders module names so that PEFT's pattern lookup, which
// takes the first key matching as a suffix at a dot boundary, finds each
// module's own key before the key of a module whose name is a suffix of
// it ("encoder.fc1" before "fc1").
func specificFirst(names []string) {
	sort.SliceStable(names, func(i, j int) bool {
		di, dj := strings.Count(names[i], "."), strings.Count(names[j], ".")
		if di != dj {
			return di > dj
		}
		return names[i] < names[j]
	})
}

// peftConfigJSON builds adapter_config.json for modules extracted with
// lora_alpha = r per module (scaling α/r = 1: B·A is ΔW itself). r and
// lora_alpha are the most common rank; when ranks differ, rank_pattern and
// alpha_pattern list every module, most specific name first.
func peftConfigJSON(mods []peftModule, baseModel string) ([]byte, error) {
	count := map[int]int{}
	for _, m := range mods {
		count[m.rank]++
	}
	r := 0
	for rank, n := range count {
		if n > count[r] || (n == count[r] && rank > r) {
			r = rank
		}
	}
	names := make([]string, len(mods))
	rankOf := map[string]int{}
	for i, m := range mods {
		names[i] = m.name
		rankOf[m.name] = m.rank
	}
	targets := append([]string(nil), names...)
	sort.Strings(targets)
	rp, ap := ordered{}, ordered{}
	if len(count) > 1 {
		specificFirst(names)
		for _, n := range names {
			rp = append(rp, kv{n, rankOf[n]})
			ap = append(ap, kv{n, rankOf[n]})
		}
	}
	var base any
	if baseModel != "" {
		base = baseModel
	}
	cfg := ordered{
		{"alpha_pattern", ap},
		{"auto_mapping", nil},
		{"base_model_name_or_path", base},
		{"bias", "none"},
		{"fan_in_fan_out", false},
		{"inference_mode", true},
		{"init_lora_weights", true},
		{"layers_pattern", nil},
		{"layers_to_transform", nil},
		{"lora_alpha", r},
		{"lora_dropout", json.RawMessage("0.0")},
		{"modules_to_save", nil},
		{"peft_type", "LORA"},
		{"r", r},
		{"rank_pattern", rp},
		{"revision", nil},
		{"target_modules", targets},
		{"task_type", nil},
		{"use_rslora", false},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

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

// ---- adapter tensors ----

// loraModule is one module of an adapter file being merged.
type loraModule struct {
	module     string // module name (base tensor = module + ".weight")
	aKey, bKey string
	alphaKey   string // kohya only
}

// parsePEFTKeys groups the tensors of a PEFT adapter file by module. Keys
// are "[base_model.model.]<module>.lora_A[.<adapter>].weight"; anything
// else (embeddings, DoRA magnitudes, LoRA biases, modules_to_save) is an
// error naming the key.
func parsePEFTKeys(f *safetensors.File) ([]*loraModule, error) {
	byModule := map[string]*loraModule{}
	var order []string
	for _, t := range f.Tensors() {
		key := strings.TrimPrefix(t.Name, peftPrefix)
		module, ab, ok := splitLoraKey(key)
		if !ok {
			return nil, &safetensors.Error{File: f.Path(), Tensor: t.Name, Err: errors.New("not a LoRA weight; expected keys <module>.lora_A.weight and <module>.lora_B.weight (embedding, DoRA, bias and modules_to_save entries are not supported)")}
		}
		m := byModule[module]
		if m == nil {
			m = &loraModule{module: module}
			byModule[module] = m
			order = append(order, module)
		}
		dst := &m.aKey
		if ab == "B" {
			dst = &m.bKey
		}
		if *dst != "" {
			return nil, &safetensors.Error{File: f.Path(), Tensor: t.Name, Err: fmt.Errorf("second lora_%s for module %q (also %q); expected one adapter per file", ab, module, *dst)}
		}
		*dst = t.Name
	}
	var mods []*loraModule
	for _, name := range order {
		m := byModule[name]
		if m.aKey == "" || m.bKey == "" {
			return nil, fmt.Errorf("lowrank: %s: module %q has only one of lora_A and lora_B; expected both", f.Path(), name)
		}
		mods = append(mods, m)
	}
	return mods, nil
}

// splitLoraKey splits "<module>.lora_A[.<adapter>].weight".
func splitLoraKey(key string) (module, ab string, ok bool) {
	rest, found := strings.CutSuffix(key, ".weight")
	if !found {
		return "", "", false
	}
	for _, x := range []string{"A", "B"} {
		marker := ".lora_" + x
		i := strings.LastIndex(rest, marker)
		if i <= 0 {
			continue
		}
		tail := rest[i+len(marker):]
		if tail == "" || (strings.HasPrefix(tail, ".") && !strings.Contains(tail[1:], ".") && len(tail) > 1) {
			return rest[:i], x, true
		}
	}
	return "", "", false
}

// isKohya reports whether an adapter file uses kohya's lora_down/lora_up
// keys.
func isKohya(f *safetensors.File) bool {
	for _, t := range f.Tensors() {
		if strings.HasSuffix(t.Name, ".lora_down.weight") {
			return true
		}
	}
	return false
}

// parseKohyaKeys groups a kohya adapter's tensors by LoRA name and maps
// each to the base tensor whose kohya name (prefix_module_with_underscores)
// it is.
func parseKohyaKeys(f *safetensors.File, base *safetensors.File) ([]*loraModule, []string, error) {
	type parts struct{ down, up, alpha string }
	byName := map[string]*parts{}
	var order []string
	for _, t := range f.Tensors() {
		var name, kind string
		for _, suf := range []string{".lora_down.weight", ".lora_up.weight", ".alpha"} {
			if n, ok := strings.CutSuffix(t.Name, suf); ok {
				name, kind = n, suf
				break
			}
		}
		if name == "" {
			return nil, nil, &safetensors.Error{File: f.Path(), Tensor: t.Name, Err: errors.New("not a kohya LoRA key; expected NAME.lora_down.weight, NAME.lora_up.weight and NAME.alpha")}
		}
		p := byName[name]
		if p == nil {
			p = &parts{}
			byName[name] = p
			order = append(order, name)
		}
		switch kind {
		case ".lora_down.weight":
			p.down = t.Name
		case ".lora_up.weight":
			p.up = t.Name
		default:
			p.alpha = t.Name
		}
	}
	// Underscored module path → base tensor name.
	under := map[string]string{}
	for _, t := range base.Tensors() {
		if m, ok := moduleOf(t.Name); ok {
			u := strings.ReplaceAll(m, ".", "_")
			if _, dup := under[u]; dup {
				under[u] = "" // ambiguous
				continue
			}
			under[u] = m
		}
	}
	var mods []*loraModule
	var missing []string
	for _, name := range order {
		p := byName[name]
		if p.down == "" || p.up == "" {
			return nil, nil, fmt.Errorf("lowrank: %s: LoRA %q lacks lora_down or lora_up; expected both", f.Path(), name)
		}
		module := ""
		for i := 0; i < len(name); i++ {
			if name[i] != '_' {
				continue
			}
			if m, ok := under[name[i+1:]]; ok {
				if m == "" {
					return nil, nil, fmt.Errorf("lowrank: %s: LoRA %q matches several tensors of %s once dots become underscores", f.Path(), name, base.Path())
				}
				module = m
				break
			}
		}
		if module == "" {
			missing = append(missing, name)
			continue
		}
		mods = append(mods, &loraModule{module: module, aKey: p.down, bKey: p.up, alphaKey: p.alpha})
	}
	return mods, missing, nil
}
