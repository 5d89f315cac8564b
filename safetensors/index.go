package safetensors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lowrank-go/lowrank/internal/osfile"
	"github.com/lowrank-go/lowrank/internal/strictjson"
)

// A sharded checkpoint, as Hugging Face stores a model too large for one
// file: shards NAME-00001-of-0000N.safetensors and an index
// NAME.safetensors.index.json,
//
//	{"metadata": {"total_size": 16060522496},
//	 "weight_map": {"lm_head.weight": "model-00004-of-00004.safetensors", …}}
//
// mapping every tensor to the shard that holds it. transformers writes
// NAME = "model", diffusers "diffusion_pytorch_model".

// IndexSuffix ends the name of a sharded checkpoint's index file.
const IndexSuffix = ".safetensors.index.json"

// MaxIndexSize is the largest index file read, in bytes (as a header).
const MaxIndexSize = MaxHeaderSize

// Index is a sharded checkpoint's index file, read strictly by ReadIndex.
type Index struct {
	// Path is the index file's path, as given.
	Path string
	// TotalSize is metadata.total_size (the bytes of the tensors' data,
	// as transformers counts it), or -1 when the index has none.
	TotalSize int64
	// WeightMap maps every tensor name to the file name of its shard.
	WeightMap map[string]string
	// Shards lists the distinct shard file names, sorted.
	Shards []string
	// Tensors lists each shard's tensor names in the order the index
	// gives them.
	Tensors map[string][]string
}

// IndexMemory returns the most memory reading an index of n bytes takes:
// the text, the map and the name lists.
func IndexMemory(n int64) int64 { return 8*n + 64<<10 }

// ReadIndex reads and checks the index file at path: at most MaxIndexSize
// bytes of UTF-8 JSON read strictly (internal/strictjson: no key twice in
// any object, no NaN, spelled exactly: a top-level key that differs from
// "metadata" or "weight_map" only by case is an error, others are
// ignored), "weight_map" an object of strings, each a shard's file name in
// the index's folder (a plain name ending in .safetensors: no folder
// separator, no "..", nothing absolute), and metadata.total_size, when
// present, a non-negative number (the whole part of a float is taken:
// transformers wrote floats for models with bool buffers). It does not open the shards (see the
// model package). Errors wrap ErrFormat (ErrMemory when reading would
// exceed o.MaxMemory) and read "lowrank: INDEX: …".
func ReadIndex(path string, o OpenOptions) (*Index, error) {
	f, st, err := osfile.OpenRegular(path)
	if err != nil {
		if errors.Is(err, osfile.ErrNotRegular) {
			return nil, formatErr(path, "", "is %s; expected a regular %s file", osfile.Kind(statMode(path)), IndexSuffix)
		}
		return nil, fmt.Errorf("lowrank: %w", err)
	}
	defer f.Close()
	if st.Size() > MaxIndexSize {
		return nil, formatErr(path, "", "index is %d bytes; expected at most %d", st.Size(), MaxIndexSize)
	}
	if need := IndexMemory(st.Size()); o.MaxMemory > 0 && need > o.MaxMemory {
		return nil, &Error{File: path, Err: fmt.Errorf("%w: reading the %d-byte index needs up to %d bytes of memory but only %d are allowed", ErrMemory, st.Size(), need, o.MaxMemory)}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxIndexSize+1))
	if err != nil {
		return nil, formatErr(path, "", "reading the index: %v", err)
	}
	if len(data) > MaxIndexSize {
		return nil, formatErr(path, "", "index is more than %d bytes; expected at most %d", MaxIndexSize, MaxIndexSize)
	}
	return ParseIndex(o.Context, data, path)
}

// ParseIndex checks the index text data as ReadIndex does; name is how
// errors call it.
func ParseIndex(ctx context.Context, data []byte, name string) (*Index, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if i := invalidUTF8(data); i >= 0 {
		return nil, formatErr(name, "", "index is not valid UTF-8 (byte %d is %#x); expected UTF-8 JSON", i, data[i])
	}
	bad := func(format string, args ...any) (*Index, error) { return nil, formatErr(name, "", format, args...) }
	s := strictjson.NewScanner(data)
	if k, err := s.Peek(); err != nil || k != strictjson.Object {
		if err != nil {
			return bad("index is %v", err)
		}
		return bad("index is %s; expected a JSON object with \"weight_map\"", k)
	}
	s.BeginObject()
	ix := &Index{Path: name, TotalSize: -1}
	var keys strictjson.Keys
	sawMap := false
	for {
		off := s.Offset()
		key, more, err := s.NextKey()
		if err != nil {
			return bad("index is %v", err)
		}
		if !more {
			break
		}
		if err := keys.Add(key, off, s); err != nil {
			return bad("index is %v", err)
		}
		switch {
		case key == "weight_map":
			sawMap = true
			if err := ix.parseWeightMap(ctx, s, data); err != nil {
				return nil, err
			}
		case key == "metadata":
			if err := ix.parseMetadata(s, data); err != nil {
				return nil, err
			}
		case strings.EqualFold(key, "weight_map") || strings.EqualFold(key, "metadata"):
			return bad("index has the key %q; expected %q, spelled exactly so", key, strings.ToLower(key))
		default:
			if err := s.Skip(); err != nil {
				return bad("index value of %q is %v", key, err)
			}
		}
	}
	if err := s.End(); err != nil {
		return bad("index has bytes after its JSON object: %v", err)
	}
	if !sawMap {
		return bad("index has no \"weight_map\"; expected {\"metadata\": {…}, \"weight_map\": {TENSOR: SHARD, …}}")
	}
	if len(ix.WeightMap) == 0 {
		return bad("index's \"weight_map\" is empty; expected at least one tensor")
	}
	ix.Shards = make([]string, 0, len(ix.Tensors))
	for sh := range ix.Tensors {
		ix.Shards = append(ix.Shards, sh)
	}
	sort.Strings(ix.Shards)
	return ix, nil
}

func (ix *Index) parseWeightMap(ctx context.Context, s *strictjson.Scanner, data []byte) error {
	bad := func(tensor, format string, args ...any) error { return formatErr(ix.Path, tensor, format, args...) }
	if k, err := s.Peek(); err != nil || k != strictjson.Object {
		if err != nil {
			return bad("", "index's \"weight_map\" is %v", err)
		}
		return bad("", "index's \"weight_map\" is %s; expected an object {TENSOR: SHARD, …}", k)
	}
	s.BeginObject()
	guess := bytes.Count(data, []byte(`":`))
	ix.WeightMap = make(map[string]string, guess)
	ix.Tensors = map[string][]string{}
	for i := 0; ; i++ {
		if i&4095 == 0 && ctx.Err() != nil {
			return &Error{File: ix.Path, Err: fmt.Errorf("reading the index: %w", ctx.Err())}
		}
		off := s.Offset()
		key, more, err := s.NextKey()
		if err != nil {
			return bad("", "index's \"weight_map\" is %v", err)
		}
		if !more {
			return nil
		}
		if _, dup := ix.WeightMap[key]; dup {
			return bad(key, "appears twice in the index's \"weight_map\" (%v); expected each tensor in one shard", s.Duplicate(key, off))
		}
		k, err := s.Peek()
		if err != nil {
			return bad(key, "index entry is %v", err)
		}
		if k != strictjson.String {
			return bad(key, "index entry is %s; expected the file name of a shard (a string)", rawValue(s, data))
		}
		shard, err := s.String()
		if err != nil {
			return bad(key, "index entry is %v", err)
		}
		if err := CheckShardName(shard); err != nil {
			return bad(key, "index entry %q %v", shard, err)
		}
		ix.WeightMap[key] = shard
		ix.Tensors[shard] = append(ix.Tensors[shard], key)
	}
}

func (ix *Index) parseMetadata(s *strictjson.Scanner, data []byte) error {
	k, err := s.Peek()
	if err != nil {
		return formatErr(ix.Path, "", "index's \"metadata\" is %v", err)
	}
	if k == strictjson.Null {
		if err := s.Null(); err != nil {
			return formatErr(ix.Path, "", "index's \"metadata\" is %v", err)
		}
		return nil
	}
	if k != strictjson.Object {
		return formatErr(ix.Path, "", "index's \"metadata\" is %s; expected an object", k)
	}
	s.BeginObject()
	var keys strictjson.Keys
	for {
		off := s.Offset()
		key, more, err := s.NextKey()
		if err != nil {
			return formatErr(ix.Path, "", "index's \"metadata\" is %v", err)
		}
		if !more {
			return nil
		}
		if err := keys.Add(key, off, s); err != nil {
			return formatErr(ix.Path, "", "index's \"metadata\" is %v", err)
		}
		if key != "total_size" {
			if strings.EqualFold(key, "total_size") {
				return formatErr(ix.Path, "", "index's \"metadata\" has the key %q; expected \"total_size\", spelled exactly so", key)
			}
			if err := s.Skip(); err != nil {
				return formatErr(ix.Path, "", "index's \"metadata\" value of %q is %v", key, err)
			}
			continue
		}
		vk, err := s.Peek()
		if err != nil {
			return formatErr(ix.Path, "", "index's metadata.total_size is %v", err)
		}
		if vk != strictjson.Number {
			return formatErr(ix.Path, "", "index's metadata.total_size is %s; expected a non-negative integer", rawValue(s, data))
		}
		n, err := s.Number()
		if err != nil {
			return formatErr(ix.Path, "", "index's metadata.total_size is %v", err)
		}
		v, ok := parseUint(n)
		if !ok {
			// transformers 4.18 to 4.3x summed sizes from dtype_byte_size,
			// which is 1/8 for bool: with a bool buffer, total_size is
			// written as a float (12219206136.0, or with a fraction). It
			// only informs, and transformers does not read it: its whole
			// part is taken.
			f, err := strconv.ParseFloat(n, 64)
			if err != nil || f < 0 || f >= 1<<63 {
				return formatErr(ix.Path, "", "index's metadata.total_size is %s; expected a non-negative number (of bytes)", n)
			}
			v = uint64(f)
		}
		ix.TotalSize = int64(v)
	}
}

// CheckShardName returns why name cannot be a shard's file name in an
// index (nil when it can): it must be a plain file name ending in
// .safetensors, in the index's own folder, so that an index cannot make a
// reader open a file elsewhere ("../x", "/etc/x", "a/b", "C:\x").
func CheckShardName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return errors.New("is not a file name; expected a shard's file name such as model-00001-of-00002.safetensors")
	case strings.ContainsAny(name, "/\\"):
		return errors.New("is a path; expected the plain file name of a shard in the index's folder (no folder, no \"..\", nothing absolute)")
	case strings.ContainsRune(name, 0):
		return errors.New("holds a NUL byte; expected a file name")
	case !strings.HasSuffix(name, ".safetensors"):
		return errors.New("does not end in .safetensors; expected a shard's file name such as model-00001-of-00002.safetensors")
	}
	return nil
}

// ShardName returns the file name Hugging Face gives shard i (from 1) of
// n of a checkpoint called prefix: prefix-0000i-of-0000n.safetensors
// (five digits, more when n needs them).
func ShardName(prefix string, i, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.safetensors", prefix, i, n)
}

// IndexJSON returns the text of an index as transformers writes one
// (json.dumps(index, indent=2, sort_keys=True) and a newline): totalSize as
// metadata.total_size and weightMap as weight_map.
func IndexJSON(totalSize int64, weightMap map[string]string) []byte {
	type index struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(index{Metadata: map[string]int64{"total_size": totalSize}, WeightMap: weightMap}) // maps: keys sorted
	return b.Bytes()
}

// invalidUTF8 returns the offset of the first byte of b that is not valid
// UTF-8, or -1 when b is valid.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	i := 0
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}
