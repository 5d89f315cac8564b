package safetensors

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestIndexJSONAsTransformersWritesIt(t *testing.T) {
	got := string(IndexJSON(96, map[string]string{"b<&>": "model-00002-of-00002.safetensors", "a": "model-00001-of-00002.safetensors"}))
	// json.dumps(index, indent=2, sort_keys=True) + "\n", non-ASCII aside.
	want := `{
  "metadata": {
    "total_size": 96
  },
  "weight_map": {
    "a": "model-00001-of-00002.safetensors",
    "b<&>": "model-00002-of-00002.safetensors"
  }
}
`
	if got != want {
		t.Errorf("IndexJSON =\n%s\nwant\n%s", got, want)
	}
	ix, err := ParseIndex(context.Background(), []byte(got), "x.json")
	if err != nil || ix.TotalSize != 96 || len(ix.WeightMap) != 2 || !slices.Equal(ix.Shards, []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
		t.Errorf("ParseIndex = %+v, %v", ix, err)
	}
	if ShardName("model", 3, 12) != "model-00003-of-00012.safetensors" || ShardName("diffusion_pytorch_model", 1, 100000) != "diffusion_pytorch_model-00001-of-100000.safetensors" {
		t.Errorf("ShardName: %s", ShardName("model", 3, 12))
	}
}

func TestParseIndexAccepts(t *testing.T) {
	for _, text := range []string{
		`{"weight_map":{"a":"s.safetensors"}}`,
		`{"metadata":null,"weight_map":{"a":"s.safetensors"}}`,
		`{"metadata":{"total_size":0,"total_parameters":12,"format":"pt"},"weight_map":{"a":"s.safetensors","b":"s.safetensors"},"extra":[1,{"x":2}]}`,
		" \n{\"weight_map\":{\"\":\"é.safetensors\"}}\n",
	} {
		if _, err := ParseIndex(nil, []byte(text), "i"); err != nil {
			t.Errorf("%s: %v", text, err)
		}
	}
	// Floats, as transformers wrote them for models with bool buffers
	// (dtype_byte_size is 1/8 for bool): the whole part.
	for text, want := range map[string]int64{"185344.0": 185344, "1.4e10": 14000000000, "96.125": 96, "0.0": 0, "1e3": 1000} {
		ix, err := ParseIndex(nil, []byte(`{"metadata":{"total_size":`+text+`},"weight_map":{"a":"s.safetensors"}}`), "i")
		if err != nil || ix.TotalSize != want {
			t.Errorf("total_size %s: %+v, %v; expected %d", text, ix, err, want)
		}
	}
	for _, text := range []string{"-1", "-0.5", "1e19", `"185344"`} {
		if _, err := ParseIndex(nil, []byte(`{"metadata":{"total_size":`+text+`},"weight_map":{"a":"s.safetensors"}}`), "i"); err == nil || !strings.Contains(err.Error(), "total_size") {
			t.Errorf("total_size %s: %v; expected a refusal naming total_size", text, err)
		}
	}
	ix, _ := ParseIndex(nil, []byte(`{"weight_map":{"x":"b.safetensors","y":"a.safetensors","z":"b.safetensors"}}`), "i")
	if ix.TotalSize != -1 || !slices.Equal(ix.Tensors["b.safetensors"], []string{"x", "z"}) {
		t.Errorf("%+v", ix)
	}
}

// FuzzIndex feeds arbitrary text to ParseIndex: no panic; an error starts
// "lowrank: NAME: " and wraps ErrFormat; an accepted index names shards
// that CheckShardName accepts, lists each tensor once under its shard, and
// reads back the same after IndexJSON.
func FuzzIndex(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"total_size":8},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}`,
		`{"weight_map":{"a":"../x.safetensors"}}`,
		`{"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}`,
		`{"Weight_Map":{}}`,
		`{"metadata":{"total_size":1e3},"weight_map":{"a":"x.safetensors"}}`,
		`{"weight_map":{"a":"/abs.safetensors"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := ParseIndex(context.Background(), data, "idx")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "lowrank: idx: ") || !errors.Is(err, ErrFormat) {
				t.Fatalf("error %q: want lowrank: idx: and ErrFormat", err)
			}
			return
		}
		n := 0
		for sh, names := range ix.Tensors {
			if CheckShardName(sh) != nil {
				t.Fatalf("accepted shard name %q", sh)
			}
			for _, name := range names {
				if ix.WeightMap[name] != sh {
					t.Fatalf("tensor %q listed under %q but mapped to %q", name, sh, ix.WeightMap[name])
				}
				n++
			}
		}
		if n != len(ix.WeightMap) || len(ix.Shards) != len(ix.Tensors) || !slices.IsSorted(ix.Shards) {
			t.Fatalf("%d listed, %d mapped, shards %v", n, len(ix.WeightMap), ix.Shards)
		}
		total := max(ix.TotalSize, 0)
		again, err := ParseIndex(context.Background(), IndexJSON(total, ix.WeightMap), "again")
		if err != nil || !maps.Equal(again.WeightMap, ix.WeightMap) || again.TotalSize != total {
			t.Fatalf("round trip: %v", err)
		}
		if !json.Valid(data) {
			t.Fatalf("accepted text that encoding/json calls invalid: %q", data)
		}
	})
}
