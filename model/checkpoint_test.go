package model_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// writeSharded writes the shards (prefix-0000i-of-0000n.safetensors, each
// with {"format": "pt"}) and their index into dir, and returns the index's
// path.
func writeSharded(t testing.TB, dir, prefix string, shards ...[]tensor) string {
	t.Helper()
	wm := map[string]string{}
	var total int64
	for i, ts := range shards {
		name := safetensors.ShardName(prefix, i+1, len(shards))
		writeST(t, filepath.Join(dir, name), map[string]string{"format": "pt"}, ts...)
		for _, x := range ts {
			wm[x.name] = name
			total += int64(len(x.vals)) * int64(x.dt.Size())
		}
	}
	ix := filepath.Join(dir, prefix+safetensors.IndexSuffix)
	if err := os.WriteFile(ix, safetensors.IndexJSON(total, wm), 0o644); err != nil {
		t.Fatal(err)
	}
	return ix
}

// A factorized model split over shards, A in one and B in another, each
// shard recording its own tensors: Open reads the folder, the index or
// either; Linear works across shards; Recorded merges the records.
func TestOpenShardedFolder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	d, r, k := 5, 2, 4
	b, a := gauss(rng, d*r, 1), gauss(rng, r*k, 1)
	w2 := gauss(rng, 3*4, 1)
	rec := func(name string, rank int) string {
		j, _ := json.Marshal(map[string]any{"version": 1, "policy": "rank=2", "split": "us",
			"tensors": map[string]any{name: map[string]any{"shape": []int{d, k}, "rank": rank, "rel_error": 0.1, "energy": 0.9, "dtype": "F32"}}})
		return string(j)
	}
	writeST(t, filepath.Join(dir, "model-00001-of-00002.safetensors"), map[string]string{"format": "pt", model.MetadataKey: rec("l0.weight", r)},
		tensor{name: "l0.weight.A", dt: safetensors.F32, shape: []int{r, k}, vals: a},
		tensor{name: "l1.weight", dt: safetensors.F32, shape: []int{3, 4}, vals: w2})
	writeST(t, filepath.Join(dir, "model-00002-of-00002.safetensors"), map[string]string{"format": "pt"},
		tensor{name: "l0.weight.B", dt: safetensors.F32, shape: []int{d, r}, vals: b},
		tensor{name: "l0.bias", dt: safetensors.F32, shape: []int{d}, vals: gauss(rng, d, 1)})
	wm := map[string]string{"l0.weight.A": "model-00001-of-00002.safetensors", "l1.weight": "model-00001-of-00002.safetensors",
		"l0.weight.B": "model-00002-of-00002.safetensors", "l0.bias": "model-00002-of-00002.safetensors"}
	ix := filepath.Join(dir, "model.safetensors.index.json")
	if err := os.WriteFile(ix, safetensors.IndexJSON(4*(int64(len(a)+len(b)+len(w2))+int64(d)), wm), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"architectures":["X"]}`), 0o644)
	for _, p := range []string{dir, ix} {
		m, err := model.Open(p)
		if err != nil {
			t.Fatalf("Open(%s): %v", p, err)
		}
		if got := m.Names(); !slices.Equal(got, []string{"l0", "l1"}) {
			t.Errorf("Names = %v", got)
		}
		l, err := m.Linear("l0")
		if err != nil {
			t.Fatal(err)
		}
		x := []float32{1, -2, 0.5, 3}
		y := make([]float32, d)
		if err := l.Forward(y, x); err != nil {
			t.Fatal(err)
		}
		bi, _ := m.Info("l0")
		if bi.Rank != r || bi.Bias != "l0.bias" || bi.Record == nil || bi.Record.RelError != 0.1 {
			t.Errorf("Info(l0) = %+v; want rank %d, the bias from the other shard and the record", bi, r)
		}
		if rec := m.Recorded(); rec == nil || len(rec.Tensors) != 1 {
			t.Errorf("Recorded = %+v", rec)
		}
		if len(m.Files()) != 2 {
			t.Errorf("%d files", len(m.Files()))
		}
		m.Close()
	}
	c, err := model.OpenCheckpoint(dir, model.CheckpointOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Sharded() || c.Prefix() != "model" || c.Folder() != dir || len(c.Tensors()) != 4 || c.Metadata()["format"] != "pt" {
		t.Errorf("checkpoint: sharded %v prefix %q folder %q %d tensors meta %v", c.Sharded(), c.Prefix(), c.Folder(), len(c.Tensors()), c.Metadata())
	}
	b32 := make([]float64, len(b))
	for i, v := range b {
		b32[i] = float64(float32(v))
	}
	if v, err := c.Float64s("l0.weight.B"); err != nil || !slices.Equal(v, b32) {
		t.Errorf("Float64s across shards: %v %v", v, err)
	}
	if _, err := c.Float32s("nope"); err == nil || !strings.Contains(err.Error(), `tensor "nope": no such tensor`) {
		t.Errorf("unknown tensor: %v", err)
	}
	other, skipped, err := c.OtherFiles()
	if err != nil || len(other) != 1 || other[0].Name != "config.json" || len(skipped) != 0 {
		t.Errorf("OtherFiles = %+v %v %v", other, skipped, err)
	}
}

// Every way an index can be wrong is an error naming the index, the
// shard and the tensor.
func TestIndexRefused(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	mk := func(name string) tensor {
		return tensor{name: name, dt: safetensors.F32, shape: []int{2, 2}, vals: gauss(rng, 4, 1)}
	}
	s1, s2 := "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	for _, c := range []struct {
		name  string
		index string // the index's text; "" for the right one
		edit  func(dir string)
		want  []string
		kind  error
	}{
		{name: "missing shard", edit: func(dir string) { os.Remove(filepath.Join(dir, s2)) },
			want: []string{`shard "` + s2 + `" (listed for 1 tensors, such as "b")`, "is missing", "interrupted download"}, kind: model.ErrNotFound},
		{name: "tensor in two shards", edit: func(dir string) {
			writeST(t, filepath.Join(dir, s2), nil, mk("b"), mk("a"))
		}, want: []string{`tensor "a": is in two shards, "` + s1 + `" and "` + s2 + `"`}, kind: model.ErrFormat},
		{name: "index puts a tensor in the wrong shard", index: `{"weight_map":{"a":"` + s2 + `","b":"` + s1 + `"}}`,
			want: []string{`tensor "a": is in shard "` + s1 + `" but the index puts it in "` + s2 + `"`}, kind: model.ErrFormat},
		{name: "shard holds a tensor the index omits", edit: func(dir string) {
			writeST(t, filepath.Join(dir, s2), nil, mk("b"), mk("c"))
		}, want: []string{`tensor "c": is in shard "` + s2 + `" but the index does not list it`}, kind: model.ErrFormat},
		{name: "index lists a tensor the shard lacks", index: `{"weight_map":{"a":"` + s1 + `","b":"` + s2 + `","c":"` + s2 + `"}}`,
			want: []string{`tensor "c": is listed in shard "` + s2 + `", which does not hold it`}, kind: model.ErrFormat},
		{name: "path traversal", index: `{"weight_map":{"a":"../` + s1 + `"}}`, want: []string{`tensor "a"`, `index entry "../` + s1 + `" is a path`}, kind: safetensors.ErrFormat},
		{name: "absolute path", index: `{"weight_map":{"a":"/etc/passwd.safetensors"}}`, want: []string{`is a path`}, kind: safetensors.ErrFormat},
		{name: "duplicate key", index: `{"weight_map":{"a":"` + s1 + `","a":"` + s2 + `"}}`, want: []string{`tensor "a"`, `appears twice in the index's "weight_map"`, `appears twice in one object`}, kind: safetensors.ErrFormat},
		{name: "duplicate weight_map", index: `{"weight_map":{"a":"` + s1 + `"},"weight_map":{"b":"` + s2 + `"}}`, want: []string{`key "weight_map" appears twice`}, kind: safetensors.ErrFormat},
		{name: "case-folded key", index: `{"Weight_Map":{"a":"` + s1 + `"}}`, want: []string{`index has the key "Weight_Map"; expected "weight_map"`}, kind: safetensors.ErrFormat},
		{name: "no weight_map", index: `{"metadata":{"total_size":16}}`, want: []string{`no "weight_map"`}, kind: safetensors.ErrFormat},
		{name: "NaN total_size", index: `{"metadata":{"total_size":NaN},"weight_map":{}}`, want: []string{`NaN is not a JSON number`}, kind: safetensors.ErrFormat},
		{name: "negative total_size", index: `{"metadata":{"total_size":-1.5},"weight_map":{"a":"` + s1 + `"}}`, want: []string{`total_size is -1.5; expected a non-negative number`}, kind: safetensors.ErrFormat},
		{name: "shard not a string", index: `{"weight_map":{"a":1}}`, want: []string{`tensor "a"`, `index entry is 1; expected the file name of a shard`}, kind: safetensors.ErrFormat},
		{name: "not safetensors", index: `{"weight_map":{"a":"pytorch_model.bin"}}`, want: []string{`does not end in .safetensors`}, kind: safetensors.ErrFormat},
		{name: "not JSON", index: `{"weight_map":`, want: []string{`not valid JSON`}, kind: safetensors.ErrFormat},
		{name: "an array", index: `[]`, want: []string{`index is an array; expected a JSON object`}, kind: safetensors.ErrFormat},
		{name: "not UTF-8", index: "{\"weight_map\":{\"\xff\":\"x.safetensors\"}}", want: []string{`not valid UTF-8`}, kind: safetensors.ErrFormat},
		{name: "trailing garbage", index: `{"weight_map":{"a":"` + s1 + `"}} x`, want: []string{`bytes after its JSON object`}, kind: safetensors.ErrFormat},
		{name: "symlink escape", edit: func(dir string) {
			outside := filepath.Join(t.TempDir(), "elsewhere.safetensors")
			writeST(t, outside, nil, mk("b"))
			os.Remove(filepath.Join(dir, s2))
			if err := os.Symlink(outside, filepath.Join(dir, s2)); err != nil {
				t.Fatal(err)
			}
		}, want: []string{`shard "` + s2 + `"`, "is a symbolic link to", "outside the model folder"}, kind: model.ErrFormat},
		{name: "shard is a folder", edit: func(dir string) {
			os.Remove(filepath.Join(dir, s2))
			os.Mkdir(filepath.Join(dir, s2), 0o755)
		}, want: []string{s2}, kind: safetensors.ErrFormat},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ix := writeSharded(t, dir, "model", []tensor{mk("a")}, []tensor{mk("b")})
			if c.index != "" {
				os.WriteFile(ix, []byte(c.index), 0o644)
			}
			if c.edit != nil {
				c.edit(dir)
			}
			before, _ := os.ReadDir(dir)
			for _, p := range []string{dir, ix} {
				_, err := model.Open(p)
				if err == nil {
					t.Fatalf("Open(%s) succeeded", p)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "lowrank: ") || strings.Count(msg, "lowrank:") != 1 {
					t.Errorf("error %q: want one lowrank: prefix", msg)
				}
				if c.name != "shard is a folder" && !strings.Contains(msg, ix) {
					t.Errorf("error %q does not name the index %s", msg, ix)
				}
				for _, w := range c.want {
					if !strings.Contains(msg, w) {
						t.Errorf("error %q lacks %q", msg, w)
					}
				}
				if !errors.Is(err, c.kind) {
					t.Errorf("error %q does not wrap %v", msg, c.kind)
				}
			}
			if after, _ := os.ReadDir(dir); len(after) != len(before) {
				t.Errorf("Open changed the folder")
			}
		})
	}
}

// The folder layouts Open finds: diffusers names, one file, and the
// Hugging Face cache (files are links into ../../blobs); two sets of
// weights in one folder is an error.
func TestFolderLayouts(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	w := tensor{name: "conv_in.weight", dt: safetensors.F32, shape: []int{2, 3}, vals: gauss(rng, 6, 1)}
	t.Run("diffusers sharded", func(t *testing.T) {
		dir := t.TempDir()
		writeSharded(t, dir, "diffusion_pytorch_model", []tensor{w}, []tensor{{name: "x.weight", dt: safetensors.F16, shape: []int{2, 2}, vals: []float64{1, 2, 3, 4}}})
		c, err := model.OpenCheckpoint(dir, model.CheckpointOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.Prefix() != "diffusion_pytorch_model" || !c.Sharded() || len(c.FileNames()) != 2 {
			t.Errorf("prefix %q sharded %v files %v", c.Prefix(), c.Sharded(), c.FileNames())
		}
	})
	t.Run("diffusers single", func(t *testing.T) {
		dir := t.TempDir()
		writeST(t, filepath.Join(dir, "diffusion_pytorch_model.safetensors"), nil, w)
		c, err := model.OpenCheckpoint(dir, model.CheckpointOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.Prefix() != "diffusion_pytorch_model" || c.Sharded() || c.Folder() != dir {
			t.Errorf("prefix %q sharded %v", c.Prefix(), c.Sharded())
		}
	})
	t.Run("both", func(t *testing.T) {
		dir := t.TempDir()
		writeST(t, filepath.Join(dir, "model.safetensors"), nil, w)
		writeSharded(t, dir, "model", []tensor{w})
		_, err := model.Open(dir)
		if !errors.Is(err, model.ErrFormat) || !strings.Contains(err.Error(), `holds both "model.safetensors" and "model.safetensors.index.json"`) {
			t.Errorf("%v", err)
		}
	})
	t.Run("adapter folder", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte("{}"), 0o644)
		_, err := model.Open(dir)
		if !errors.Is(err, model.ErrNotFound) || !strings.Contains(err.Error(), "an adapter, not a model") {
			t.Errorf("%v", err)
		}
	})
	t.Run("hugging face cache", func(t *testing.T) {
		repo := t.TempDir()
		blobs := filepath.Join(repo, "blobs")
		snap := filepath.Join(repo, "snapshots", "0123abc")
		os.MkdirAll(blobs, 0o755)
		os.MkdirAll(snap, 0o755)
		src := t.TempDir()
		writeSharded(t, src, "model", []tensor{w})
		os.WriteFile(filepath.Join(src, "config.json"), []byte("{}"), 0o644)
		ents, _ := os.ReadDir(src)
		for i, e := range ents {
			blob := filepath.Join(blobs, strings.Repeat("ab", 4)+string(rune('a'+i)))
			data, _ := os.ReadFile(filepath.Join(src, e.Name()))
			os.WriteFile(blob, data, 0o644)
			if err := os.Symlink(filepath.Join("..", "..", "blobs", filepath.Base(blob)), filepath.Join(snap, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		c, err := model.OpenCheckpoint(snap, model.CheckpointOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		other, _, err := c.OtherFiles()
		if err != nil || len(other) != 1 || other[0].Name != "config.json" {
			t.Errorf("OtherFiles = %+v, %v", other, err)
		}
	})
	t.Run("other files", func(t *testing.T) {
		dir := t.TempDir()
		writeSharded(t, dir, "model", []tensor{w})
		for _, n := range []string{"config.json", "tokenizer.json", ".gitattributes", "pytorch_model.bin", "pytorch_model.bin.index.json", "consolidated.safetensors", ".lowrank-manifest.json"} {
			os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644)
		}
		os.Mkdir(filepath.Join(dir, "original"), 0o755)
		c, err := model.OpenCheckpoint(filepath.Join(dir, "model.safetensors.index.json"), model.CheckpointOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		other, skipped, err := c.OtherFiles()
		var names []string
		for _, o := range other {
			names = append(names, o.Name)
		}
		if err != nil || !slices.Equal(names, []string{".gitattributes", "config.json", "tokenizer.json"}) || len(skipped) != 4 {
			t.Errorf("OtherFiles = %v, skipped %v, %v", names, skipped, err)
		}
		if err := os.Symlink("/etc/hostname", filepath.Join(dir, "README.md")); err == nil {
			if _, _, err := c.OtherFiles(); err == nil || !strings.Contains(err.Error(), "outside the model folder") {
				t.Errorf("a link out of the folder: %v", err)
			}
		}
	})
	t.Run("memory", func(t *testing.T) {
		dir := t.TempDir()
		writeSharded(t, dir, "model", []tensor{w}, []tensor{{name: "y", dt: safetensors.F32, shape: []int{1}, vals: []float64{1}}})
		_, err := model.OpenCheckpoint(dir, model.CheckpointOptions{MaxMemory: 70 << 10})
		if !errors.Is(err, model.ErrMemory) {
			t.Errorf("a budget below two headers: %v", err)
		}
	})
}
