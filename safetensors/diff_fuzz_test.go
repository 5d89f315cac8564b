package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// refTensor is a tensor as the reference reading sees it.
type refTensor struct {
	DType      string
	Shape      []uint64
	Begin, End uint64
}

// refParse reads a safetensors header independently of the package's
// reader: encoding/json's tokenizer (a different JSON parser, RFC 8259
// syntax) builds a generic tree, with the strict rules added plainly on top
// (a key twice in an object, invalid UTF-8, a string encoding/json had to
// repair: rejected), then the format's rules are checked on the tree with
// math/big arithmetic. It returns the tensors and metadata, or an error.
func refParse(hdr []byte, dataLen uint64) (map[string]refTensor, map[string]string, error) {
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, errors.New("header does not start with '{'")
	}
	if !utf8.Valid(hdr) {
		return nil, nil, errors.New("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	tree, err := refValue(dec, hdr, 0)
	if err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("bytes after the object: %v", err)
	}
	top, ok := tree.(refObject)
	if !ok {
		return nil, nil, errors.New("not an object")
	}
	meta := map[string]string{}
	tensors := map[string]refTensor{}
	for _, kv := range top {
		if kv.key == "__metadata__" {
			if kv.val == nil {
				continue
			}
			m, ok := kv.val.(refObject)
			if !ok {
				return nil, nil, errors.New("__metadata__ not an object")
			}
			for _, e := range m {
				s, ok := e.val.(string)
				if !ok {
					return nil, nil, errors.New("metadata value not a string")
				}
				meta[e.key] = s
			}
			continue
		}
		entry, ok := kv.val.(refObject)
		if !ok || len(entry) != 3 {
			return nil, nil, fmt.Errorf("entry %q is not an object of three keys", kv.key)
		}
		f := map[string]any{}
		for _, e := range entry {
			f[e.key] = e.val
		}
		dt, ok1 := f["dtype"].(string)
		shape, ok2 := f["shape"].([]any)
		offs, ok3 := f["data_offsets"].([]any)
		if !ok1 || !ok2 || !ok3 || len(offs) != 2 || len(shape) > MaxDims {
			return nil, nil, fmt.Errorf("entry %q: bad fields", kv.key)
		}
		if !DType(dt).Known() {
			return nil, nil, fmt.Errorf("entry %q: dtype %q", kv.key, dt)
		}
		t := refTensor{DType: dt}
		// The size in bits, multiplied dimension by dimension in the
		// order written, must stay below 2⁶³ at every step (as the
		// reference implementation's checked multiplication: a zero
		// after an overflow does not undo it).
		bitsN := big.NewInt(int64(DType(dt).Bits()))
		limit := new(big.Int).Lsh(big.NewInt(1), 63)
		for _, d := range shape {
			v, ok := refUint(d)
			if !ok {
				return nil, nil, fmt.Errorf("entry %q: dimension %v", kv.key, d)
			}
			t.Shape = append(t.Shape, v)
			bitsN.Mul(bitsN, new(big.Int).SetUint64(v))
			if bitsN.Cmp(limit) >= 0 {
				return nil, nil, fmt.Errorf("entry %q: size overflows", kv.key)
			}
		}
		if new(big.Int).Mod(bitsN, big.NewInt(8)).Sign() != 0 {
			return nil, nil, fmt.Errorf("entry %q: size", kv.key)
		}
		b, okb := refUint(offs[0])
		e, oke := refUint(offs[1])
		if !okb || !oke || e < b || e-b != new(big.Int).Div(bitsN, big.NewInt(8)).Uint64() {
			return nil, nil, fmt.Errorf("entry %q: offsets", kv.key)
		}
		t.Begin, t.End = b, e
		tensors[kv.key] = t
	}
	if len(tensors) > MaxTensors {
		return nil, nil, errors.New("too many tensors")
	}
	// Tensors cover the data section exactly.
	spans := make([]refTensor, 0, len(tensors))
	for _, t := range tensors {
		spans = append(spans, t)
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].Begin != spans[j].Begin {
			return spans[i].Begin < spans[j].Begin
		}
		return spans[i].End < spans[j].End
	})
	var pos uint64
	for _, s := range spans {
		if s.Begin != pos {
			return nil, nil, errors.New("hole or overlap")
		}
		pos = s.End
	}
	if pos != dataLen {
		return nil, nil, errors.New("data section not covered")
	}
	return tensors, meta, nil
}

// refUint reads a JSON number written as plain digits that fits 63 bits.
func refUint(v any) (uint64, bool) {
	n, ok := v.(json.Number)
	if !ok || n == "" || strings.Trim(string(n), "0123456789") != "" {
		return 0, false
	}
	b, ok := new(big.Int).SetString(string(n), 10)
	if !ok || b.BitLen() > 63 {
		return 0, false
	}
	return b.Uint64(), true
}

type refKV struct {
	key string
	val any
}

type refObject []refKV

// refValue reads one value with encoding/json's tokens; objects keep their
// order and refuse a key twice.
func refValue(dec *json.Decoder, raw []byte, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if depth > 64 {
		return nil, errors.New("too deep for a header")
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			var obj refObject
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				if err := refString(k, raw); err != nil {
					return nil, err
				}
				if seen[k] {
					return nil, fmt.Errorf("key %q twice", k)
				}
				seen[k] = true
				v, err := refValue(dec, raw, depth+1)
				if err != nil {
					return nil, err
				}
				obj = append(obj, refKV{k, v})
			}
			_, err := dec.Token()
			return obj, err
		case '[':
			var arr []any
			for dec.More() {
				v, err := refValue(dec, raw, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			_, err := dec.Token()
			return arr, err
		}
	case string:
		return t, refString(t, raw)
	}
	return tok, nil
}

// refString refuses a string encoding/json repaired: a U+FFFD it produced
// for a lone surrogate escape (the raw text then holds no U+FFFD of its
// own, neither as UTF-8 nor escaped).
func refString(s string, raw []byte) error {
	if strings.ContainsRune(s, utf8.RuneError) && !bytes.Contains(raw, []byte("\uFFFD")) && !bytes.Contains(bytes.ToLower(raw), []byte(`\ufffd`)) {
		return errors.New("lone surrogate")
	}
	return nil
}

// FuzzHeaderDifferential checks the package's header reader against the
// independent reading above, on the same bytes: both accept or both
// refuse, and when both accept they see the same tensors (names, dtypes,
// shapes, offsets) and the same metadata. A reader that took the last of
// two "dtype" keys, folded "DType" onto "dtype", or accepted NaN would
// disagree here.
func FuzzHeaderDifferential(f *testing.F) {
	for _, h := range []string{
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`,
		`{"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}}`,
		`{"w":{"dtype":"F16","DType":"BF16","shape":[2,2],"data_offsets":[0,8]}}`,
		`{"w":{"dtype":"F16","dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}`,
		`{"w":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8],"ſhape":[1,2]}}`,
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"\u0061":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`,
		`{"w":{"dtype":"F32","shape":[NaN],"data_offsets":[0,8]}}`,
		`{"\ud800":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}`,
		`{"\ud83d\ude00":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}`,
		`{"__metadata__":null,"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}   `,
		`{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}` + "\t\n",
		`{"a":{"dtype":"U8","shape":[08],"data_offsets":[0,8]}}`,
		`{"a":{"dtype":"U8","shape":[8.0],"data_offsets":[0,8]}}`,
	} {
		f.Add([]byte(h), uint16(8))
	}
	if paths, _ := filepath.Glob(filepath.Join("..", "testdata", "hostile", "*.safetensors")); len(paths) > 0 {
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil || len(b) < 8 || len(b) > 1<<16 {
				continue
			}
			n := binary.LittleEndian.Uint64(b[:8])
			if n <= uint64(len(b)-8) {
				f.Add(b[8:8+n], uint16(min(uint64(len(b))-8-n, 65535)))
			}
		}
	}
	f.Fuzz(func(t *testing.T, hdr []byte, dataLen uint16) {
		if len(hdr) < 2 {
			return
		}
		file := make([]byte, 8+len(hdr)+int(dataLen))
		binary.LittleEndian.PutUint64(file, uint64(len(hdr)))
		copy(file[8:], hdr)
		ours, oerr := NewReader(bytes.NewReader(file), int64(len(file)), "d.safetensors")
		refT, refM, rerr := refParse(hdr, uint64(dataLen))
		if (oerr == nil) != (rerr == nil) {
			t.Fatalf("disagree on %q (data %d bytes): ours %v, reference %v", hdr, dataLen, oerr, rerr)
		}
		if oerr != nil {
			return
		}
		got := map[string]refTensor{}
		for _, ti := range ours.Tensors() {
			s := make([]uint64, len(ti.Shape))
			for i, d := range ti.Shape {
				s[i] = uint64(d)
			}
			got[ti.Name] = refTensor{DType: string(ti.DType), Shape: s, Begin: uint64(ti.Begin), End: uint64(ti.End)}
		}
		for n, rt := range refT {
			if len(rt.Shape) == 0 {
				rt.Shape = []uint64{}
				refT[n] = rt
			}
		}
		for n, gt := range got {
			if len(gt.Shape) == 0 {
				gt.Shape = []uint64{}
				got[n] = gt
			}
		}
		if !reflect.DeepEqual(got, refT) {
			t.Fatalf("tensors differ on %q: ours %v, reference %v", hdr, got, refT)
		}
		if !reflect.DeepEqual(ours.Metadata(), refM) {
			t.Fatalf("metadata differs on %q: ours %v, reference %v", hdr, ours.Metadata(), refM)
		}
	})
}
