package model

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"context"
	"sync"

	"github.com/lowrank-go/lowrank/internal/osfile"
	"github.com/lowrank-go/lowrank/internal/strictjson"
)

// PEFTConfig is what this package reads of a PEFT adapter's
// adapter_config.json: LoraConfig's fields that decide each module's rank
// and scaling. Everything else is checked as JSON and otherwise ignored.
type PEFTConfig struct {
	// Path is the file's path, as errors name it.
	Path string
	// PeftType is "LORA" (anything else is refused).
	PeftType string
	// R and LoraAlpha are the default rank and alpha (LoraConfig's
	// defaults: alpha 8); UseRslora scales by alpha/√r instead of
	// alpha/r; FanInFanOut says the base weights are stored in×out
	// (GPT-2's Conv1D).
	R           int
	LoraAlpha   float64
	UseRslora   bool
	FanInFanOut bool
	// Raw is the file as read.
	Raw []byte

	mu           sync.Mutex // the patterns' caches
	rankPattern  *patterns
	alphaPattern *patterns
}

func configErr(path, format string, args ...any) error {
	return fileErr(ErrFormat, path, format, args...)
}

// readPEFTConfig reads and checks an adapter folder's adapter_config.json,
// which must be a regular file (a FIFO or device is refused, not waited
// on).
func readPEFTConfig(ctx context.Context, dir string, mem Budget) (*PEFTConfig, error) {
	path := filepath.Join(dir, PEFTConfigName)
	f, st, err := osfile.OpenRegular(path)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fileErr(ErrNotFound, dir, "%s not found; expected a PEFT adapter folder holding %s and %s", PEFTConfigName, PEFTConfigName, PEFTWeightsName)
		case errors.Is(err, osfile.ErrNotRegular):
			st, _ := os.Stat(path)
			return nil, configErr(path, "is %s; expected a regular JSON file", osfile.Kind(st.Mode()))
		}
		return nil, &modelError{kinds: []error{err}, msg: err.Error()}
	}
	defer f.Close()
	if st.Size() > maxConfigBytes {
		return nil, configErr(path, "larger than %d bytes; expected a small JSON file", maxConfigBytes)
	}
	if err := take(mem, configMemory(st.Size()), path+": reading it"); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, &modelError{kinds: []error{err}, msg: path + ": " + unwrapPathErr(err).Error()}
	}
	if len(raw) > maxConfigBytes {
		return nil, configErr(path, "larger than %d bytes; expected a small JSON file", maxConfigBytes)
	}
	return parsePEFTConfig(ctx, raw, path, mem)
}

// configMemory is the most memory reading a config of n bytes takes: the
// text, and for rank_pattern and alpha_pattern keys their entries (the
// compiled patterns are counted when compiled).
func configMemory(n int64) int64 { return 8*n + 64<<10 }

// configKeys are the adapter_config.json keys merge reads, spelled as PEFT
// writes them (LoraConfig's fields).
var configKeys = []string{"peft_type", "r", "lora_alpha", "use_rslora", "fan_in_fan_out", "use_dora", "rank_pattern", "alpha_pattern"}

// ParsePEFTConfig reads the adapter_config.json raw (path is how errors
// name it) strictly (internal/strictjson): a key twice, anywhere, is an
// error, as is a key that differs from one of LoraConfig's only by case or
// Unicode folding ("R", "Lora_Alpha", "ſhape"); other keys are checked as
// JSON and otherwise ignored. peft_type must be "LORA", r a positive
// integer ≤ 2³⁰, lora_alpha finite, use_dora false; rank_pattern and
// alpha_pattern are read in order, their keys charged to b (nil: no
// budget). Errors start "lowrank: PATH: " and wrap ErrFormat (or the
// budget's error).
func ParsePEFTConfig(raw []byte, path string, b Budget) (*PEFTConfig, error) {
	return parsePEFTConfig(context.Background(), raw, path, b)
}

func parsePEFTConfig(ctx context.Context, raw []byte, path string, mem Budget) (*PEFTConfig, error) {
	if !utf8.Valid(raw) {
		return nil, configErr(path, "not valid UTF-8; expected a UTF-8 JSON object")
	}
	c := &PEFTConfig{Path: path, Raw: raw, LoraAlpha: 8} // LoraConfig's default alpha
	s := strictjson.NewScanner(raw)
	syntax := func(err error) error { return configErr(path, "%v", err) }
	k, err := s.Peek()
	if err != nil {
		return nil, syntax(err)
	}
	if k != strictjson.Object {
		return nil, configErr(path, "is %s; expected a JSON object", k)
	}
	s.BeginObject()
	var keys strictjson.Keys
	seenR := false
	for {
		off := s.Offset()
		key, more, err := s.NextKey()
		if err != nil {
			return nil, syntax(err)
		}
		if !more {
			break
		}
		if err := keys.Add(key, off, s); err != nil {
			return nil, syntax(err)
		}
		known := false
		for _, want := range configKeys {
			if key == want {
				known = true
			} else if strings.EqualFold(key, want) {
				return nil, configErr(path, "key %q is not spelled as PEFT spells %q; expected the exact spelling (keys are not case-folded)", key, want)
			}
		}
		if !known {
			if err := s.Skip(); err != nil {
				return nil, syntax(err)
			}
			continue
		}
		vk, err := s.Peek()
		if err != nil {
			return nil, syntax(err)
		}
		if vk == strictjson.Null {
			if key == "lora_alpha" { // PEFT fails on None / r; never guess a scaling
				return nil, configErr(path, "\"lora_alpha\" is null; expected a number (or no lora_alpha key: PEFT's default 8)")
			}
			if err := s.Null(); err != nil {
				return nil, syntax(err)
			}
			continue
		}
		switch key {
		case "peft_type":
			if vk != strictjson.String {
				return nil, configErr(path, "%q is %s; expected a string", key, rawText(s, raw))
			}
			if c.PeftType, err = s.String(); err != nil {
				return nil, syntax(err)
			}
		case "use_rslora", "fan_in_fan_out", "use_dora":
			if vk != strictjson.Bool {
				return nil, configErr(path, "%q is %s; expected true or false", key, rawText(s, raw))
			}
			b, err := s.Bool()
			if err != nil {
				return nil, syntax(err)
			}
			switch key {
			case "use_rslora":
				c.UseRslora = b
			case "fan_in_fan_out":
				c.FanInFanOut = b
			case "use_dora":
				if b {
					return nil, fileErr(ErrUnsupported, path, "use_dora is true; DoRA adapters are not supported, expected a plain LoRA adapter")
				}
			}
		case "r", "lora_alpha":
			x, err := number(s, raw, key, path)
			if err != nil {
				return nil, err
			}
			if key == "r" {
				seenR = true
				if x < 1 || x != math.Trunc(x) || x > maxRank {
					return nil, configErr(path, "\"r\" is %v; expected a positive integer ≤ %d", x, maxRank)
				}
				c.R = int(x)
			} else {
				c.LoraAlpha = x
			}
		case "rank_pattern", "alpha_pattern":
			dst := &c.rankPattern
			if key == "alpha_pattern" {
				dst = &c.alphaPattern
			}
			if *dst, err = parsePattern(ctx, s, raw, key, path, mem); err != nil {
				return nil, err
			}
		}
	}
	if err := s.End(); err != nil {
		return nil, syntax(err)
	}
	if c.PeftType != "LORA" {
		return nil, fileErr(ErrUnsupported, path, "peft_type is %q; expected \"LORA\" (other PEFT methods are not supported)", c.PeftType)
	}
	if !seenR {
		return nil, configErr(path, "\"r\" is missing; expected a positive integer")
	}
	return c, nil
}

// rawText skips the next value and returns its text, for messages (cut at
// 40 bytes).
func rawText(s *strictjson.Scanner, raw []byte) string {
	start := s.Offset()
	if err := s.Skip(); err != nil {
		return err.Error()
	}
	v := strings.TrimSpace(string(raw[start:s.Offset()]))
	if len(v) > 40 {
		v = v[:37] + "…"
	}
	return v
}

// number reads a finite JSON number (1e400 is refused, not read as +Inf).
func number(s *strictjson.Scanner, raw []byte, key, path string) (float64, error) {
	if k, err := s.Peek(); err != nil || k != strictjson.Number {
		if err != nil {
			return 0, configErr(path, "%v", err)
		}
		return 0, configErr(path, "%q is %s; expected a number", key, rawText(s, raw))
	}
	lit, err := s.Number()
	if err != nil {
		return 0, configErr(path, "%v", err)
	}
	x, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(x, 0) {
		return 0, configErr(path, "%q is %s; expected a finite number", key, lit)
	}
	return x, nil
}

// parsePattern reads a rank_pattern or alpha_pattern object, keeping the
// order of its keys (PEFT takes the first key that matches).
func parsePattern(ctx context.Context, s *strictjson.Scanner, raw []byte, name, path string, mem Budget) (*patterns, error) {
	if k, err := s.Peek(); err != nil || k != strictjson.Object {
		if err != nil {
			return nil, configErr(path, "%v", err)
		}
		return nil, configErr(path, "%q is %s; expected an object of module names to numbers", name, rawText(s, raw))
	}
	s.BeginObject()
	var keys strictjson.Keys
	out := &patterns{name: name, path: path, mem: mem}
	for i := 0; ; i++ {
		if err := tick(ctx, i); err != nil {
			return nil, err
		}
		off := s.Offset()
		k, more, err := s.NextKey()
		if err != nil {
			return nil, configErr(path, "%v", err)
		}
		if !more {
			return out, nil
		}
		if err := keys.Add(k, off, s); err != nil {
			return nil, configErr(path, "%s: %v", name, err)
		}
		label := fmt.Sprintf("%s[%q]", name, k)
		v, err := number(s, raw, label, path)
		if err != nil {
			return nil, err
		}
		if name == "rank_pattern" && (v < 1 || v != math.Trunc(v) || v > maxRank) {
			return nil, configErr(path, "%s is %v; expected a positive integer rank ≤ %d", label, v, maxRank)
		}
		if err := out.add(k, v); err != nil {
			return nil, err
		}
	}
}

// Scaling returns the rank PEFT expects for module and its scaling:
// lora_alpha/r, or lora_alpha/√r with use_rslora, with r and lora_alpha
// taken from rank_pattern and alpha_pattern when a key matches (the first
// key K, in the order written, with ^(.*\.)?(K)$ matching the module, as
// PEFT ≥ 0.14 matches them). It is safe for concurrent use; its error is
// a budget's or a bound's (see the package documentation).
func (c *PEFTConfig) Scaling(module string) (rank int, scale float64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := float64(c.R)
	if v, ok, err := c.rankPattern.match(module); err != nil {
		return 0, 0, err
	} else if ok {
		r = v
	}
	alpha := c.LoraAlpha
	if v, ok, err := c.alphaPattern.match(module); err != nil {
		return 0, 0, err
	} else if ok {
		alpha = v
	}
	if c.UseRslora {
		return int(r), alpha / math.Sqrt(r), nil
	}
	return int(r), alpha / r, nil
}
