// Package hostile builds lowrank's suite of hostile inputs: malformed or
// odd safetensors files, PEFT adapter folders and kohya adapter files,
// each with the attack it makes and what every command must do with it.
// The suite is checked in under testdata/hostile (go generate writes it,
// with a README.md table), except the cases too big for a repository,
// which the tests build in a temporary folder.
//
// cmd/lowrank's TestHostileSuite runs every case through lowrank info,
// factorize and merge.
package hostile

//go:generate go run ./gen -o ../../../testdata/hostile

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// Kind says what a case is and how the commands use it.
type Kind int

const (
	// File is a .safetensors file: info FILE, factorize FILE -o OUT,
	// merge FILE -o OUT (densify).
	File Kind = iota
	// Adapter is a PEFT adapter folder: info DIR, merge --base
	// base.safetensors --adapter DIR -o OUT, and factorize
	// DIR/adapter_model.safetensors when it exists.
	Adapter
	// Kohya is a kohya LoRA file: info FILE, merge --base base.safetensors
	// --adapter FILE -o OUT, factorize FILE -o OUT.
	Kohya
)

// OK is the expectation of a command that must succeed; NotRun, of one
// that does not apply (factorize of an adapter folder without weights).
const (
	OK     = "ok"
	NotRun = "-"
)

// Case is one hostile input.
type Case struct {
	// Name is the file or folder name under testdata/hostile.
	Name   string
	Kind   Kind
	Attack string // what it attacks, one line
	// Files maps paths relative to testdata/hostile to their contents.
	Files map[string][]byte
	// Big cases are not checked in: the tests build them.
	Big bool
	// Info, Factorize and Merge are OK or a substring of the one error
	// line each command must print (besides the input's path).
	Info, Factorize, Merge string
}

// BaseName is the valid base model the adapter cases are merged into.
const BaseName = "base.safetensors"

// tensor is one entry of a file built by build.
type tensor struct {
	name  string
	dtype string
	shape []int
	data  []byte
}

// build returns a well-formed safetensors file holding the tensors in order
// (the header padded with spaces to a multiple of 8, as the reference
// implementation writes it), with optional metadata.
func build(meta map[string]string, ts ...tensor) []byte {
	var h strings.Builder
	h.WriteByte('{')
	first := true
	if meta != nil {
		mj, _ := json.Marshal(meta) // sorted keys
		h.WriteString(`"__metadata__":`)
		h.Write(mj)
		first = false
	}
	var data []byte
	for _, t := range ts {
		if !first {
			h.WriteByte(',')
		}
		first = false
		nj, _ := json.Marshal(t.name)
		shape, _ := json.Marshal(t.shape)
		if t.shape == nil {
			shape = []byte("[]")
		}
		fmt.Fprintf(&h, `%s:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, nj, t.dtype, shape, len(data), len(data)+len(t.data))
		data = append(data, t.data...)
	}
	h.WriteByte('}')
	hdr := h.String()
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	return raw(uint64(len(hdr)), hdr, data)
}

// raw returns a file with header length n (whatever the header's real
// length), the header and the data.
func raw(n uint64, header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, n)
	return append(append(b, header...), data...)
}

// f32 returns the little-endian F32 bytes of v.
func f32(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// u16 returns the little-endian bytes of 16-bit patterns (F16, BF16).
func u16(v ...uint16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}

// seq returns n float32 values of a fixed, full-rank pattern.
func seq(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = scale * float32((i*7)%11-5) / 5
	}
	return v
}

// fill returns n copies of x.
func fill(n int, x float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = x
	}
	return v
}

// mat is a d×k F32 tensor with the seq pattern.
func mat(name string, d, k int) tensor {
	return tensor{name, "F32", []int{d, k}, f32(seq(d*k, 1)...)}
}

// base is the valid model the adapters apply to.
func base() []byte {
	return build(map[string]string{"format": "pt"},
		mat("fc1.weight", 8, 6), mat("fc2.weight", 6, 8),
		tensor{"norm.weight", "F32", []int{8}, f32(fill(8, 1)...)})
}

// peft returns a PEFT adapter folder's files: config and weights for
// module fc1 (8×6) at rank 2, unless overridden.
func peft(name, config string, ts ...tensor) map[string][]byte {
	files := map[string][]byte{}
	if config != "" {
		files[name+"/adapter_config.json"] = []byte(config)
	}
	if ts != nil {
		files[name+"/adapter_model.safetensors"] = build(map[string]string{"format": "pt"}, ts...)
	}
	return files
}

// loraA and loraB are fc1's PEFT factors at rank r.
func loraA(r int) tensor {
	return tensor{"base_model.model.fc1.lora_A.weight", "F32", []int{r, 6}, f32(seq(r*6, 0.1)...)}
}
func loraB(r int) tensor {
	return tensor{"base_model.model.fc1.lora_B.weight", "F32", []int{8, r}, f32(seq(8*r, 0.1)...)}
}

const goodConfig = `{"peft_type":"LORA","r":2,"lora_alpha":4,"target_modules":["fc1"]}`

// one returns a single-file case's Files.
func one(name string, b []byte) map[string][]byte { return map[string][]byte{name: b} }

// nested returns n levels of JSON arrays.
func nested(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// header returns a file whose header is h (padded to 8 bytes) over data.
func header(h string, data []byte) []byte {
	for len(h)%8 != 0 {
		h += " "
	}
	return raw(uint64(len(h)), h, data)
}

// Cases returns the suite. Every call builds the same bytes.
func Cases() []Case {
	f32x4 := `"dtype":"F32","shape":[2,2]`
	good := f32(1, 2, 3, 4)
	cs := []Case{
		{Name: BaseName, Attack: "nothing: a valid model (the base the adapter cases are merged into)",
			Files: one(BaseName, base()), Info: OK, Factorize: OK, Merge: "no NAME.A / NAME.B factor pairs"},
		{Name: "empty.safetensors", Attack: "an empty file",
			Files: one("empty.safetensors", nil), Info: "expected at least the 8-byte header length", Factorize: "8-byte header length", Merge: "8-byte header length"},
		{Name: "short-length.safetensors", Attack: "a file shorter than the 8-byte header length",
			Files: one("short-length.safetensors", []byte{2, 0, 0, 0}), Info: "8-byte header length", Factorize: "8-byte header length", Merge: "8-byte header length"},
		{Name: "header-beyond-file.safetensors", Attack: "header length larger than the file",
			Files: one("header-beyond-file.safetensors", raw(4096, `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32(1))),
			Info:  "truncated file?", Factorize: "truncated file?", Merge: "truncated file?"},
		{Name: "header-2p63.safetensors", Attack: "header length 2^63 (allocation bomb; negative as int64)",
			Files: one("header-2p63.safetensors", raw(1<<63, `{}`, nil)), Info: "header length is 9223372036854775808 bytes; expected at most 100000000", Factorize: "expected at most 100000000", Merge: "expected at most 100000000"},
		{Name: "header-maxuint64.safetensors", Attack: "header length 2^64−1",
			Files: one("header-maxuint64.safetensors", raw(math.MaxUint64, `{}`, nil)), Info: "expected at most 100000000", Factorize: "expected at most 100000000", Merge: "expected at most 100000000"},
		{Name: "header-tiny.safetensors", Attack: "header length 1 (no room for a JSON object)",
			Files: one("header-tiny.safetensors", raw(1, `{`, nil)), Info: "expected a JSON object", Factorize: "expected a JSON object", Merge: "expected a JSON object"},
		{Name: "header-not-object.safetensors", Attack: "header is a JSON array, not an object",
			Files: one("header-not-object.safetensors", header(`[1,2]`, nil)), Info: "expected a JSON object starting with '{'", Factorize: "expected a JSON object", Merge: "expected a JSON object"},
		{Name: "header-trailing-garbage.safetensors", Attack: "bytes other than spaces after the header's JSON object",
			Files: one("header-trailing-garbage.safetensors", header(`{} xyz`, nil)), Info: "expected only space padding", Factorize: "expected only space padding", Merge: "expected only space padding"},
		{Name: "header-bad-json.safetensors", Attack: "header cut in the middle of its JSON",
			Files: one("header-bad-json.safetensors", header(`{"a":{"dtype":"F32","sh`, nil)), Info: `tensor "a"`, Factorize: `tensor "a"`, Merge: `tensor "a"`},
		{Name: "truncated-data.safetensors", Attack: "data section shorter than the header says (truncated download)",
			Files: one("truncated-data.safetensors", truncate(build(nil, mat("w.weight", 8, 6)), 92)),
			Info:  `tensor "w.weight"`, Factorize: "beyond the data section", Merge: "beyond the data section"},
		{Name: "offsets-out-of-range.safetensors", Attack: "data_offsets past the end of the file",
			Files: one("offsets-out-of-range.safetensors", header(`{"a":{`+f32x4+`,"data_offsets":[1000000,1000016]}}`, good)),
			Info:  `tensor "a": invalid safetensors file: data_offsets [1000000, 1000016] end beyond the data section`, Factorize: "beyond the data section", Merge: "beyond the data section"},
		{Name: "offsets-huge.safetensors", Attack: "a shape of 10^10 elements with matching offsets of 40 GB in a tiny file (allocation bomb)",
			Files: one("offsets-huge.safetensors", header(`{"a":{"dtype":"F32","shape":[100000,100000],"data_offsets":[0,40000000000]}}`, good)),
			Info:  `tensor "a"`, Factorize: "end beyond the data section of 16 bytes (truncated file?)", Merge: "beyond the data section"},
		{Name: "offsets-overlap.safetensors", Attack: "two tensors sharing bytes",
			Files: one("offsets-overlap.safetensors", header(`{"a":{`+f32x4+`,"data_offsets":[0,16]},"b":{`+f32x4+`,"data_offsets":[8,24]}}`, f32(1, 2, 3, 4, 5, 6))),
			Info:  `tensor "b"`, Factorize: `overlap tensor "a"`, Merge: "overlap"},
		{Name: "offsets-alias.safetensors", Attack: "two tensors at the very same offsets (aliasing)",
			Files: one("offsets-alias.safetensors", header(`{"a":{`+f32x4+`,"data_offsets":[0,16]},"b":{`+f32x4+`,"data_offsets":[0,16]}}`, good)),
			Info:  "overlap", Factorize: "overlap", Merge: "overlap"},
		{Name: "offsets-gap.safetensors", Attack: "unused bytes between tensors (a hiding place)",
			Files: one("offsets-gap.safetensors", header(`{"a":{`+f32x4+`,"data_offsets":[0,16]},"b":{`+f32x4+`,"data_offsets":[24,40]}}`, make([]byte, 40))),
			Info:  `tensor "b"`, Factorize: "without holes", Merge: "without holes"},
		{Name: "offsets-trailing-data.safetensors", Attack: "bytes after the last tensor",
			Files: one("offsets-trailing-data.safetensors", header(`{"a":{`+f32x4+`,"data_offsets":[0,16]}}`, make([]byte, 32))),
			Info:  "tensors cover 16 bytes of a 32-byte data section", Factorize: "cover it exactly", Merge: "cover it exactly"},
		{Name: "offsets-reversed.safetensors", Attack: "data_offsets with END < BEGIN",
			Files: one("offsets-reversed.safetensors", header(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}}`, make([]byte, 16))),
			Info:  "BEGIN ≤ END", Factorize: "BEGIN ≤ END", Merge: "BEGIN ≤ END"},
		{Name: "offsets-negative.safetensors", Attack: "negative data_offsets",
			Files: one("offsets-negative.safetensors", header(`{"a":{`+f32x4+`,"data_offsets":[-16,0]}}`, good)),
			Info:  "non-negative integers", Factorize: "non-negative integers", Merge: "non-negative integers"},
		{Name: "offsets-2p64.safetensors", Attack: "data_offsets beyond 2^64",
			Files: one("offsets-2p64.safetensors", header(`{"a":{`+f32x4+`,"data_offsets":[18446744073709551616,18446744073709551632]}}`, good)),
			Info:  "non-negative integers", Factorize: "non-negative integers", Merge: "non-negative integers"},
		{Name: "size-mismatch.safetensors", Attack: "dtype·shape ≠ data_offsets length",
			Files: one("size-mismatch.safetensors", header(`{"a":{`+f32x4+`,"data_offsets":[0,8]}}`, good[:8])),
			Info:  `tensor "a": invalid safetensors file: data_offsets [0, 8] hold 8 bytes; expected 16 bytes for F32 [2 2]`, Factorize: "expected 16 bytes", Merge: "expected 16 bytes"},
		{Name: "dims-overflow.safetensors", Attack: "dimensions whose product overflows int64 (2^32·2^32·4 bytes)",
			Files: one("dims-overflow.safetensors", header(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}}`, good)),
			Info:  "overflows 64 bits", Factorize: "overflows 64 bits", Merge: "overflows 64 bits"},
		{Name: "dims-overflow-bits.safetensors", Attack: "2^61 elements: the count fits int64, its bits do not",
			Files: one("dims-overflow-bits.safetensors", header(`{"a":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,16]}}`, good)),
			Info:  "overflows 64 bits", Factorize: "overflows 64 bits", Merge: "overflows 64 bits"},
		{Name: "dims-zero-times-huge.safetensors", Attack: "a zero dimension beside 2^62-sized ones (0 elements, huge dims)",
			Files: one("dims-zero-times-huge.safetensors", header(`{"a":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}}`, nil)),
			Info:  OK, Factorize: "no tensor to factorize", Merge: "no NAME.A / NAME.B factor pairs"},
		{Name: "dims-negative.safetensors", Attack: "a negative dimension",
			Files: one("dims-negative.safetensors", header(`{"a":{"dtype":"F32","shape":[-2,-2],"data_offsets":[0,16]}}`, good)),
			Info:  "shape[0] is -2; expected a non-negative integer", Factorize: "non-negative integer", Merge: "non-negative integer"},
		{Name: "dims-float.safetensors", Attack: "a fractional dimension",
			Files: one("dims-float.safetensors", header(`{"a":{"dtype":"F32","shape":[2,2.0],"data_offsets":[0,16]}}`, good)),
			Info:  "shape[1] is 2.0; expected a non-negative integer", Factorize: "non-negative integer", Merge: "non-negative integer"},
		{Name: "dims-exponent.safetensors", Attack: "a dimension written 1e1",
			Files: one("dims-exponent.safetensors", header(`{"a":{"dtype":"F32","shape":[1e1],"data_offsets":[0,40]}}`, make([]byte, 40))),
			Info:  "non-negative integer", Factorize: "non-negative integer", Merge: "non-negative integer"},
		{Name: "dims-string.safetensors", Attack: "a dimension given as a string",
			Files: one("dims-string.safetensors", header(`{"a":{"dtype":"F32","shape":["2",2],"data_offsets":[0,16]}}`, good)),
			Info:  `tensor "a": invalid safetensors file: shape[0] is "2"; expected a non-negative integer`, Factorize: "non-negative integer", Merge: "non-negative integer"},
		{Name: "dims-too-many.safetensors", Attack: "65 dimensions",
			Files: one("dims-too-many.safetensors", header(`{"a":{"dtype":"U8","shape":[`+strings.Repeat("1,", 64)+`1],"data_offsets":[0,1]}}`, []byte{1})),
			Info:  "shape has 65 dimensions; expected at most 64", Factorize: "at most 64", Merge: "at most 64"},
		{Name: "dtype-unknown.safetensors", Attack: "an unknown dtype",
			Files: one("dtype-unknown.safetensors", header(`{"a":{"dtype":"Q4","shape":[2,2],"data_offsets":[0,16]}}`, good)),
			Info:  `tensor "a": unsupported dtype: dtype "Q4"`, Factorize: `dtype "Q4"`, Merge: `dtype "Q4"`},
		{Name: "dtype-sub-byte.safetensors", Attack: "an F4 tensor of an odd number of elements (not a whole number of bytes)",
			Files: one("dtype-sub-byte.safetensors", header(`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}`, []byte{0})),
			Info:  "whole number of bytes", Factorize: "whole number of bytes", Merge: "whole number of bytes"},
		{Name: "dtype-missing.safetensors", Attack: "a tensor entry without dtype",
			Files: one("dtype-missing.safetensors", header(`{"a":{"shape":[2,2],"data_offsets":[0,16]}}`, good)),
			Info:  "lacks dtype, shape or data_offsets", Factorize: "lacks dtype", Merge: "lacks dtype"},
		{Name: "entry-not-object.safetensors", Attack: "a tensor entry that is a number",
			Files: one("entry-not-object.safetensors", header(`{"a":5}`, nil)),
			Info:  `tensor "a": invalid safetensors file: header entry is a number; expected an object`, Factorize: "header entry is a number", Merge: "header entry is a number"},
		{Name: "duplicate-name.safetensors", Attack: "the same tensor name twice (which one is read?)",
			Files: one("duplicate-name.safetensors", header(`{"a":{`+f32x4+`,"data_offsets":[0,16]},"a":{`+f32x4+`,"data_offsets":[16,32]}}`, make([]byte, 32))),
			Info:  `tensor "a": invalid safetensors file: appears twice in the header`, Factorize: "appears twice", Merge: "appears twice"},
		{Name: "duplicate-escaped-name.safetensors", Attack: `the same name twice, once escaped ("a" and "\u0061")`,
			Files: one("duplicate-escaped-name.safetensors", header(`{"a":{`+f32x4+`,"data_offsets":[0,16]},"\u0061":{`+f32x4+`,"data_offsets":[16,32]}}`, make([]byte, 32))),
			Info:  "appears twice", Factorize: "appears twice", Merge: "appears twice"},
		{Name: "duplicate-metadata.safetensors", Attack: "__metadata__ twice",
			Files: one("duplicate-metadata.safetensors", header(`{"__metadata__":{"a":"1"},"__metadata__":{"a":"2"}}`, nil)),
			Info:  `tensor "__metadata__"`, Factorize: "appears twice", Merge: "appears twice"},
		{Name: "metadata-not-string.safetensors", Attack: "a non-string __metadata__ value",
			Files: one("metadata-not-string.safetensors", header(`{"__metadata__":{"n":1}}`, nil)),
			Info:  `__metadata__ value of "n" is a number; expected a string`, Factorize: "expected a string", Merge: "expected a string"},
		{Name: "metadata-not-object.safetensors", Attack: "__metadata__ that is an array",
			Files: one("metadata-not-object.safetensors", header(`{"__metadata__":["a"]}`, nil)),
			Info:  "__metadata__ is an array; expected a JSON object of strings", Factorize: "__metadata__ is an array", Merge: "__metadata__ is an array"},
		{Name: "nested-metadata.safetensors", Attack: "100 000 nested JSON arrays in __metadata__ (stack exhaustion)",
			Files: one("nested-metadata.safetensors", header(`{"__metadata__":{"x":`+nested(100000)+`}}`, nil)),
			Info:  `__metadata__ value of "x" is an array; expected a string`, Factorize: "expected a string", Merge: "expected a string"},
		{Name: "nested-entry.safetensors", Attack: "100 000 nested JSON arrays in an unknown field of a tensor entry",
			Files: one("nested-entry.safetensors", header(`{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16],"x":`+nested(100000)+`}}`, good)),
			Info:  `tensor "a": invalid safetensors file: header entry has the key "x"; expected only "dtype", "shape" and "data_offsets"`, Factorize: `has the key "x"`, Merge: `has the key "x"`},
		{Name: "nested-shape.safetensors", Attack: "100 000 nested JSON arrays as a dimension (stack exhaustion)",
			Files: one("nested-shape.safetensors", header(`{"a":{"dtype":"F32","shape":[2,`+nested(100000)+`],"data_offsets":[0,16]}}`, good)),
			Info:  "exceeded max depth", Factorize: "exceeded max depth", Merge: "exceeded max depth"},
		// Parser differentials (issue 9, point 6): encoding/json reads keys
		// case-insensitively, with Unicode folding, and keeps the last of
		// duplicates; Python's json keeps the last, serde refuses. A strict
		// reader refuses them all, so that no two readers see different
		// tensors in one file.
		{Name: "dtype-case-folded.safetensors", Attack: `"dtype":"F16" and "DType":"BF16" in one entry (read as BF16 by encoding/json, F16 by Python)`,
			Files: one("dtype-case-folded.safetensors", header(`{"w":{"dtype":"F16","DType":"BF16","shape":[2,2],"data_offsets":[0,8]}}`, make([]byte, 8))),
			Info:  `tensor "w": invalid safetensors file: header entry has the key "DType"; expected only "dtype", "shape" and "data_offsets", spelled exactly so`, Factorize: `has the key "DType"`, Merge: `has the key "DType"`},
		{Name: "shape-unicode-folded.safetensors", Attack: `a second shape spelled "ſhape" (U+017F folds to s: the matrix read transposed)`,
			Files: one("shape-unicode-folded.safetensors", header(`{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24],"ſhape":[3,2]}}`, make([]byte, 24))),
			Info:  `has the key "ſhape"`, Factorize: `has the key "ſhape"`, Merge: `has the key "ſhape"`},
		{Name: "entry-duplicate-key.safetensors", Attack: `"dtype" twice in one entry (first or last wins?)`,
			Files: one("entry-duplicate-key.safetensors", header(`{"w":{"dtype":"F16","dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}`, make([]byte, 8))),
			Info:  `key "dtype" appears twice in one object`, Factorize: "appears twice", Merge: "appears twice"},
		{Name: "metadata-duplicate-key.safetensors", Attack: "a __metadata__ key twice",
			Files: one("metadata-duplicate-key.safetensors", header(`{"__metadata__":{"format":"pt","format":"np"}}`, nil)),
			Info:  `key "format" appears twice in one object`, Factorize: "appears twice", Merge: "appears twice"},
		{Name: "header-nan.safetensors", Attack: "a NaN literal in the header (Python's json writes and reads it)",
			Files: one("header-nan.safetensors", header(`{"w":{"dtype":"F32","shape":[NaN],"data_offsets":[0,0]}}`, nil)),
			Info:  "NaN is not a JSON number", Factorize: "NaN is not a JSON number", Merge: "NaN is not a JSON number"},
		{Name: "invalid-utf8-name.safetensors", Attack: "a tensor name that is not valid UTF-8 (would be silently renamed)",
			Files: one("invalid-utf8-name.safetensors", header("{\"w\xff\xfe\":{"+f32x4+`,"data_offsets":[0,16]}}`, good)),
			Info:  "header is not valid UTF-8 (byte 3 is 0xff)", Factorize: "not valid UTF-8", Merge: "not valid UTF-8"},
		{Name: "odd-names.safetensors", Attack: "valid but odd names: empty, NUL, newline, quotes, 'lowrank:' (error-line injection)",
			Files: one("odd-names.safetensors", build(nil,
				tensor{"", "F32", []int{4, 3}, f32(seq(12, 1)...)},
				tensor{"nul\x00name", "F32", []int{1}, f32(1)},
				tensor{"two\nlines\nlowrank: fake error", "F32", []int{3, 4}, f32(seq(12, 2)...)},
				tensor{`"quoted" \ name`, "U8", []int{2}, []byte{1, 2}})),
			Info: OK, Factorize: OK, Merge: "no NAME.A / NAME.B factor pairs"},
		{Name: "nan-inf.safetensors", Attack: "NaN and ±Inf values (F32 NaN, F16 +Inf, BF16 NaN)",
			Files: one("nan-inf.safetensors", build(nil,
				tensor{"a.weight", "F32", []int{2, 3}, f32(1, 2, float32(math.NaN()), 4, 5, 6)},
				tensor{"b.weight", "F16", []int{2, 2}, u16(0x3c00, 0x7c00, 0x3c00, 0x3c00)},
				tensor{"c.weight", "BF16", []int{2, 2}, u16(0x3f80, 0x3f80, 0x7fc0, 0x3f80)})),
			Info: OK, Factorize: `tensor "a.weight": element [0, 2] is NaN; expected finite values`, Merge: "no NAME.A / NAME.B factor pairs"},
		{Name: "nan-factors.safetensors", Attack: "factor pairs (NAME.A, NAME.B) holding NaN",
			Files: one("nan-factors.safetensors", build(nil,
				tensor{"w.A", "F32", []int{1, 3}, f32(1, float32(math.NaN()), 3)},
				tensor{"w.B", "F32", []int{2, 1}, f32(1, 2)})),
			Info: OK, Factorize: `"w.A", "w.B" are factors lowrank factorize wrote`, Merge: `tensor "w.A": element [0, 1] is NaN`},
		{Name: "zero-size.safetensors", Attack: "zero-size tensors only ([0,5], [5,0], [0], scalar-free)",
			Files: one("zero-size.safetensors", build(nil,
				tensor{"a.weight", "F32", []int{0, 5}, nil}, tensor{"b.weight", "F16", []int{5, 0}, nil}, tensor{"c", "U8", []int{0}, nil})),
			Info: OK, Factorize: "no tensor to factorize; expected 2-D F16, BF16, F32 or F64 tensors", Merge: "no NAME.A / NAME.B factor pairs"},
		{Name: "zero-size-beside-matrix.safetensors", Attack: "zero-size tensors beside a real matrix (all at the same offset)",
			Files: one("zero-size-beside-matrix.safetensors", build(nil,
				tensor{"a.weight", "F32", []int{0, 5}, nil}, mat("w.weight", 8, 6), tensor{"z", "F32", []int{0}, nil})),
			Info: OK, Factorize: OK, Merge: "no NAME.A / NAME.B factor pairs"},
		{Name: "factor-shape-mismatch.safetensors", Attack: "NAME.A and NAME.B whose inner dimensions differ",
			Files: one("factor-shape-mismatch.safetensors", build(nil,
				tensor{"w.A", "F32", []int{2, 3}, f32(seq(6, 1)...)}, tensor{"w.B", "F32", []int{4, 3}, f32(seq(12, 1)...)})),
			Info: OK, Factorize: OK, Merge: `are not factors B (d×r) and A (r×k)`},
		{Name: "factor-beside-dense.safetensors", Attack: "NAME.A and NAME.B beside a dense NAME (which one wins?)",
			Files: one("factor-beside-dense.safetensors", build(nil,
				tensor{"w", "F32", []int{4, 3}, f32(seq(12, 1)...)}, tensor{"w.A", "F32", []int{1, 3}, f32(1, 2, 3)}, tensor{"w.B", "F32", []int{4, 1}, f32(1, 2, 3, 4)})),
			Info: OK, Factorize: `"w.A", "w.B" are factors lowrank factorize wrote`, Merge: `tensor "w" exists beside its factors`},
		{Name: "f16-max.safetensors", Attack: "F16 values at the largest finite F16, 65504 (factors overflow F16)",
			Files: one("f16-max.safetensors", build(nil, tensor{"w.weight", "F16", []int{8, 8}, u16(fillU16(64, 0x7bff)...)})),
			Info:  OK, Factorize: `exceeds the range of F16; expected --dtype f32 (or bf16)`, Merge: "no NAME.A / NAME.B factor pairs"},
		{Name: "bf16-huge.safetensors", Attack: "BF16 values near the float32 limit (3.39e38): ‖W‖ overflows float32",
			Files: one("bf16-huge.safetensors", build(nil, tensor{"w.weight", "BF16", []int{4, 4}, u16(fillU16(16, 0x7f7f)...)})),
			Info:  OK, Factorize: "overflow", Merge: "no NAME.A / NAME.B factor pairs"},
		{Name: "denormal.safetensors", Attack: "subnormal F32 and F16 values only",
			Files: one("denormal.safetensors", build(nil,
				tensor{"a.weight", "F32", []int{6, 4}, f32(scaled(seq(24, 1), 1e-40)...)},
				tensor{"b.weight", "F16", []int{4, 6}, u16(denormF16(24)...)})),
			Info: OK, Factorize: OK, Merge: "no NAME.A / NAME.B factor pairs"},
		{Name: "long-vector.safetensors", Attack: "1×100000 and 100000×1 matrices",
			Files: one("long-vector.safetensors", build(nil,
				tensor{"row.weight", "F16", []int{1, 100000}, u16(fillU16(100000, 0x3c00)...)},
				tensor{"col.weight", "F16", []int{100000, 1}, u16(fillU16(100000, 0xbc00)...)})),
			Info: OK, Factorize: OK, Merge: "no NAME.A / NAME.B factor pairs"},
		{Name: "million-tensors.safetensors", Attack: "1 048 577 tensor entries (one past MaxTensors) in a 59 MB header",
			Big: true, Info: "header declares more than 1048576 tensors", Factorize: "more than 1048576 tensors", Merge: "more than 1048576 tensors"},

		// PEFT adapter folders, merged into base.safetensors.
		{Name: "adapter-ok", Kind: Adapter, Attack: "nothing: a valid PEFT adapter (control)",
			Files: peft("adapter-ok", goodConfig, loraA(2), loraB(2)), Info: OK, Factorize: OK, Merge: OK},
		{Name: "adapter-no-config", Kind: Adapter, Attack: "adapter folder without adapter_config.json",
			Files: peft("adapter-no-config", "", loraA(2), loraB(2)), Info: "adapter_config.json not found", Factorize: OK, Merge: "adapter_config.json not found"},
		{Name: "adapter-no-weights", Kind: Adapter, Attack: "adapter folder without adapter_model.safetensors",
			Files: peft("adapter-no-weights", goodConfig), Info: "no such file", Factorize: NotRun, Merge: "adapter_model.safetensors not found"},
		{Name: "adapter-r-zero", Kind: Adapter, Attack: "adapter_config.json with r = 0 (division by zero in the scaling)",
			Files: peft("adapter-r-zero", `{"peft_type":"LORA","r":0,"lora_alpha":4}`, loraA(2), loraB(2)),
			Info:  `"r" is 0; expected a positive integer`, Factorize: OK, Merge: `"r" is 0; expected a positive integer`},
		{Name: "adapter-r-negative", Kind: Adapter, Attack: "adapter_config.json with r = -2",
			Files: peft("adapter-r-negative", `{"peft_type":"LORA","r":-2,"lora_alpha":4}`, loraA(2), loraB(2)),
			Info:  `"r" is -2`, Factorize: OK, Merge: `"r" is -2`},
		{Name: "adapter-r-huge", Kind: Adapter, Attack: "adapter_config.json with r = 10^300",
			Files: peft("adapter-r-huge", `{"peft_type":"LORA","r":1e300,"lora_alpha":4}`, loraA(2), loraB(2)),
			Info:  `"r" is 1e+300; expected a positive integer ≤ 1073741824`, Factorize: OK, Merge: "≤ 1073741824"},
		{Name: "adapter-r-string", Kind: Adapter, Attack: `adapter_config.json with r = "2"`,
			Files: peft("adapter-r-string", `{"peft_type":"LORA","r":"2","lora_alpha":4}`, loraA(2), loraB(2)),
			Info:  `"r" is "2"; expected a number`, Factorize: OK, Merge: "expected a number"},
		{Name: "adapter-r-missing", Kind: Adapter, Attack: "adapter_config.json without r",
			Files: peft("adapter-r-missing", `{"peft_type":"LORA","lora_alpha":4}`, loraA(2), loraB(2)),
			Info:  `"r" is missing`, Factorize: OK, Merge: `"r" is missing`},
		{Name: "adapter-r-disagrees", Kind: Adapter, Attack: "r = 8 in the config, rank 2 in the weights",
			Files: peft("adapter-r-disagrees", `{"peft_type":"LORA","r":8,"lora_alpha":16}`, loraA(2), loraB(2)),
			Info:  OK, Factorize: OK, Merge: `has rank 2 but`},
		{Name: "adapter-pattern-no-match", Kind: Adapter, Attack: "rank_pattern keys that match no module (the module keeps r, which disagrees)",
			Files: peft("adapter-pattern-no-match", `{"peft_type":"LORA","r":4,"lora_alpha":4,"rank_pattern":{"decoder.fc9":2}}`, loraA(2), loraB(2)),
			Info:  OK, Factorize: OK, Merge: `gives r = 4 for module "fc1"`},
		{Name: "adapter-pattern-bad-regex", Kind: Adapter, Attack: "a rank_pattern key that is not a regular expression",
			Files: peft("adapter-pattern-bad-regex", `{"peft_type":"LORA","r":2,"lora_alpha":4,"rank_pattern":{"fc1(":2}}`, loraA(2), loraB(2)),
			Info:  `rank_pattern key "fc1(" is not a regular expression`, Factorize: OK, Merge: "is not a regular expression"},
		{Name: "adapter-pattern-fraction", Kind: Adapter, Attack: "a rank_pattern value of 2.5",
			Files: peft("adapter-pattern-fraction", `{"peft_type":"LORA","r":2,"lora_alpha":4,"rank_pattern":{"fc1":2.5}}`, loraA(2), loraB(2)),
			Info:  `rank_pattern["fc1"] is 2.5; expected a positive integer rank`, Factorize: OK, Merge: "expected a positive integer rank"},
		{Name: "adapter-config-not-json", Kind: Adapter, Attack: "adapter_config.json that is not JSON",
			Files: peft("adapter-config-not-json", `peft_type = "LORA"`, loraA(2), loraB(2)),
			Info:  `not valid JSON: unexpected 'p'; expected a value`, Factorize: OK, Merge: "not valid JSON"},
		{Name: "adapter-config-array", Kind: Adapter, Attack: "adapter_config.json that is a JSON array",
			Files: peft("adapter-config-array", `[{"peft_type":"LORA","r":2}]`, loraA(2), loraB(2)),
			Info:  "is an array; expected a JSON object", Factorize: OK, Merge: "is an array; expected a JSON object"},
		{Name: "adapter-config-nan", Kind: Adapter, Attack: "lora_alpha NaN (Python's json reads it)",
			Files: peft("adapter-config-nan", `{"peft_type":"LORA","r":2,"lora_alpha":NaN}`, loraA(2), loraB(2)),
			Info:  "not valid JSON: NaN is not a JSON number", Factorize: OK, Merge: "NaN is not a JSON number"},
		{Name: "adapter-config-duplicate-key", Kind: Adapter, Attack: `alpha_pattern {"fc1":4,"fc1":400}: we read 4, Python's json 400`,
			Files: peft("adapter-config-duplicate-key", `{"peft_type":"LORA","r":2,"lora_alpha":2,"alpha_pattern":{"fc1":4,"fc1":400}}`, loraA(2), loraB(2)),
			Info:  `alpha_pattern: not valid JSON: key "fc1" appears twice in one object`, Factorize: OK, Merge: "appears twice"},
		{Name: "adapter-config-duplicate-r", Kind: Adapter, Attack: `"r" twice`,
			Files: peft("adapter-config-duplicate-r", `{"peft_type":"LORA","r":8,"r":2,"lora_alpha":2}`, loraA(2), loraB(2)),
			Info:  `key "r" appears twice`, Factorize: OK, Merge: `key "r" appears twice`},
		{Name: "adapter-config-case-folded", Kind: Adapter, Attack: `"R" beside "r" (encoding/json would read it as r)`,
			Files: peft("adapter-config-case-folded", `{"peft_type":"LORA","r":2,"R":8,"lora_alpha":2}`, loraA(2), loraB(2)),
			Info:  `key "R" is not spelled as PEFT spells "r"`, Factorize: OK, Merge: `key "R" is not spelled as PEFT spells "r"`},
		{Name: "adapter-config-nested", Kind: Adapter, Attack: "adapter_config.json of 100 000 nested arrays",
			Files: peft("adapter-config-nested", `{"peft_type":"LORA","r":2,"x":`+nested(100000)+`}`, loraA(2), loraB(2)),
			Info:  "exceeded max depth", Factorize: OK, Merge: "exceeded max depth"},
		{Name: "adapter-config-invalid-utf8", Kind: Adapter, Attack: "adapter_config.json that is not valid UTF-8",
			Files: peft("adapter-config-invalid-utf8", "{\"peft_type\":\"LORA\",\"r\":2,\"rank_pattern\":{\"fc1\xff\":2}}", loraA(2), loraB(2)),
			Info:  "not valid UTF-8", Factorize: OK, Merge: "not valid UTF-8"},
		{Name: "adapter-config-huge", Kind: Adapter, Attack: "a 17 MiB adapter_config.json", Big: true,
			Info: "larger than 16777216 bytes", Factorize: OK, Merge: "larger than 16777216 bytes"},
		{Name: "adapter-not-lora", Kind: Adapter, Attack: `peft_type "IA3"`,
			Files: peft("adapter-not-lora", `{"peft_type":"IA3","r":2}`, loraA(2), loraB(2)),
			Info:  `peft_type is "IA3"; expected "LORA"`, Factorize: OK, Merge: `expected "LORA"`},
		{Name: "adapter-dora", Kind: Adapter, Attack: "a DoRA adapter (use_dora: true)",
			Files: peft("adapter-dora", `{"peft_type":"LORA","r":2,"use_dora":true}`, loraA(2), loraB(2)),
			Info:  "DoRA adapters are not supported", Factorize: OK, Merge: "DoRA adapters are not supported"},
		{Name: "adapter-half-pair", Kind: Adapter, Attack: "adapter_model.safetensors with lora_A but no lora_B",
			Files: peft("adapter-half-pair", goodConfig, loraA(2)),
			Info:  `module "fc1" has only one of lora_A and lora_B`, Factorize: OK, Merge: "has only one of lora_A and lora_B"},
		{Name: "adapter-shape-mismatch", Kind: Adapter, Attack: "lora_A (2×6) and lora_B (8×3) of different ranks",
			Files: peft("adapter-shape-mismatch", goodConfig, loraA(2), loraB(3)),
			Info:  OK, Factorize: OK, Merge: "B has 3 columns but A has 2 rows"},
		{Name: "adapter-wrong-base-shape", Kind: Adapter, Attack: "factors for a 6×8 module where the base has 8×6",
			Files: peft("adapter-wrong-base-shape", goodConfig,
				tensor{"base_model.model.fc1.lora_A.weight", "F32", []int{2, 8}, f32(seq(16, 0.1)...)},
				tensor{"base_model.model.fc1.lora_B.weight", "F32", []int{6, 2}, f32(seq(12, 0.1)...)}),
			Info: OK, Factorize: OK, Merge: `tensor "fc1.weight" is F32 8×6 but the adapter's B (6×2) · A (2×8) for it is 6×8`},
		{Name: "adapter-3d", Kind: Adapter, Attack: "a 3-D lora_A",
			Files: peft("adapter-3d", goodConfig, tensor{"base_model.model.fc1.lora_A.weight", "F32", []int{2, 3, 2}, f32(seq(12, 0.1)...)}, loraB(2)),
			Info:  OK, Factorize: OK, Merge: "expected a 2-D float matrix"},
		{Name: "adapter-unknown-module", Kind: Adapter, Attack: "a module the base model does not have",
			Files: peft("adapter-unknown-module", goodConfig,
				tensor{"base_model.model.decoder.fc9.lora_A.weight", "F32", []int{2, 6}, f32(seq(12, 0.1)...)},
				tensor{"base_model.model.decoder.fc9.lora_B.weight", "F32", []int{8, 2}, f32(seq(16, 0.1)...)}),
			Info: OK, Factorize: OK, Merge: "adapter modules not in"},
		{Name: "adapter-not-lora-key", Kind: Adapter, Attack: "a DoRA magnitude key a LoRA merge cannot apply",
			Files: peft("adapter-not-lora-key", goodConfig, loraA(2), loraB(2), tensor{"base_model.model.fc1.lora_magnitude_vector", "F32", []int{2}, f32(1, 2)}),
			Info:  `tensor "base_model.model.fc1.lora_magnitude_vector": not a LoRA weight`, Factorize: OK, Merge: "not a LoRA weight"},
		{Name: "adapter-nan", Kind: Adapter, Attack: "NaN in lora_B",
			Files: peft("adapter-nan", goodConfig, loraA(2),
				tensor{"base_model.model.fc1.lora_B.weight", "F32", []int{8, 2}, f32(append(seq(15, 0.1), float32(math.NaN()))...)}),
			Info: OK, Factorize: `tensor "base_model.model.fc1.lora_B.weight": element [7, 1] is NaN`, Merge: `tensor "base_model.model.fc1.lora_B.weight": element [7, 1] is NaN`},
		{Name: "adapter-truncated-weights", Kind: Adapter, Attack: "a truncated adapter_model.safetensors",
			Files: map[string][]byte{"adapter-truncated-weights/adapter_config.json": []byte(goodConfig),
				"adapter-truncated-weights/adapter_model.safetensors": truncate(build(nil, loraA(2), loraB(2)), 20)},
			Info: "adapter_model.safetensors", Factorize: "beyond the data section", Merge: "beyond the data section"},
		{Name: "adapter-overflow", Kind: Adapter, Attack: "factors whose product overflows the base's F32 (3e38·3e38)",
			Files: peft("adapter-overflow", `{"peft_type":"LORA","r":1,"lora_alpha":1}`,
				tensor{"base_model.model.fc1.lora_A.weight", "F32", []int{1, 6}, f32(fill(6, 3e38)...)},
				tensor{"base_model.model.fc1.lora_B.weight", "F32", []int{8, 1}, f32(fill(8, 3e38)...)}),
			Info: OK, Factorize: "overflow", Merge: `tensor "fc1.weight": merged element [0, 0]`},

		// kohya LoRA files, merged into base.safetensors.
		{Name: "kohya-ok.safetensors", Kind: Kohya, Attack: "nothing: a valid kohya LoRA file (control)",
			Files: one("kohya-ok.safetensors", build(nil,
				tensor{"lora_fc1.alpha", "F32", nil, f32(2)},
				tensor{"lora_fc1.lora_down.weight", "F32", []int{2, 6}, f32(seq(12, 0.1)...)},
				tensor{"lora_fc1.lora_up.weight", "F32", []int{8, 2}, f32(seq(16, 0.1)...)})),
			Info: OK, Factorize: OK, Merge: OK},
		{Name: "kohya-half-pair.safetensors", Kind: Kohya, Attack: "a kohya LoRA with lora_down but no lora_up",
			Files: one("kohya-half-pair.safetensors", build(nil, tensor{"lora_fc1.lora_down.weight", "F32", []int{2, 6}, f32(seq(12, 0.1)...)})),
			Info:  OK, Factorize: OK, Merge: `LoRA "lora_fc1" lacks lora_down or lora_up`},
		{Name: "kohya-alpha-nan.safetensors", Kind: Kohya, Attack: "a kohya alpha that is NaN",
			Files: one("kohya-alpha-nan.safetensors", build(nil,
				tensor{"lora_fc1.alpha", "F32", nil, f32(float32(math.NaN()))},
				tensor{"lora_fc1.lora_down.weight", "F32", []int{2, 6}, f32(seq(12, 0.1)...)},
				tensor{"lora_fc1.lora_up.weight", "F32", []int{8, 2}, f32(seq(16, 0.1)...)})),
			Info: OK, Factorize: OK, Merge: `tensor "lora_fc1.alpha" is NaN; expected a positive alpha (or 0, read as r as kohya does)`},
		{Name: "kohya-alpha-vector.safetensors", Kind: Kohya, Attack: "a kohya alpha that is not a scalar",
			Files: one("kohya-alpha-vector.safetensors", build(nil,
				tensor{"lora_fc1.alpha", "F32", []int{2}, f32(2, 2)},
				tensor{"lora_fc1.lora_down.weight", "F32", []int{2, 6}, f32(seq(12, 0.1)...)},
				tensor{"lora_fc1.lora_up.weight", "F32", []int{8, 2}, f32(seq(16, 0.1)...)})),
			Info: OK, Factorize: OK, Merge: `tensor "lora_fc1.alpha": shape [2]; expected a single value`},
	}
	return cs
}

// BuildBig returns the files of a Big case.
func BuildBig(c Case) map[string][]byte {
	switch c.Name {
	case "million-tensors.safetensors":
		var h strings.Builder
		h.WriteByte('{')
		for i := range MaxTensorsPlusOne {
			if i > 0 {
				h.WriteByte(',')
			}
			fmt.Fprintf(&h, `"%x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`, i)
		}
		h.WriteByte('}')
		return one(c.Name, header(h.String(), nil))
	case "adapter-config-huge":
		cfg := `{"peft_type":"LORA","r":2,"lora_alpha":4,"padding":"` + strings.Repeat("x", 17<<20) + `"}`
		return peft(c.Name, cfg, loraA(2), loraB(2))
	}
	return nil
}

// MaxTensorsPlusOne is one past safetensors.MaxTensors.
const MaxTensorsPlusOne = 1<<20 + 1

// truncate drops the last n bytes of b.
func truncate(b []byte, n int) []byte { return b[:len(b)-n] }

func fillU16(n int, x uint16) []uint16 {
	v := make([]uint16, n)
	for i := range v {
		v[i] = x
	}
	return v
}

func scaled(v []float32, s float32) []float32 {
	for i := range v {
		v[i] *= s
	}
	return v
}

// denormF16 returns n subnormal F16 bit patterns (exponent 0).
func denormF16(n int) []uint16 {
	v := make([]uint16, n)
	for i := range v {
		v[i] = uint16(1 + (i*37)%1000)
		if i%3 == 0 {
			v[i] |= 0x8000
		}
	}
	return v
}

// Manifest returns README.md for testdata/hostile: one row per case.
func Manifest() []byte {
	var b strings.Builder
	b.WriteString("# Hostile inputs\n\n")
	b.WriteString("Generated by `go generate ./internal/testkit/hostile` (internal/testkit/hostile/hostile.go); do not edit.\n")
	b.WriteString("cmd/lowrank's TestHostileSuite runs every case through `lowrank info`, `factorize` and `merge`\n")
	b.WriteString("(adapters: `merge --base base.safetensors --adapter …`) and checks the outcome below: `ok`, or one\n")
	b.WriteString("`lowrank:` error line naming the input and containing the text shown; no panic, no output left behind,\n")
	b.WriteString("bounded memory. Cases marked *built by the test* are too big to check in.\n\n")
	b.WriteString("| input | attack | info | factorize | merge |\n| --- | --- | --- | --- | --- |\n")
	cell := func(s string) string {
		s = strings.ReplaceAll(s, "|", `\|`)
		if s == OK || s == NotRun {
			return s
		}
		return "error: `" + strings.ReplaceAll(s, "`", "'") + "`"
	}
	for _, c := range Cases() {
		name := "`" + c.Name + "`"
		if c.Kind == Adapter {
			name += " (folder)"
		}
		if c.Big {
			name += " (*built by the test*)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", name, strings.ReplaceAll(c.Attack, "|", `\|`), cell(c.Info), cell(c.Factorize), cell(c.Merge))
	}
	return []byte(b.String())
}
