package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// shardedModel writes a Hugging Face style model folder to dir: nShards
// shards named model-0000i-of-0000N.safetensors, their index, a
// config.json and a tokenizer file. It returns every tensor, in order.
func shardedModel(t *testing.T, dir string, nShards, layers int) []tensor {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, uint64(layers)))
	var all []tensor
	for l := range layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		all = append(all,
			tensor{name: p + "self_attn.q_proj.weight", dt: safetensors.BF16, shape: []int{48, 40}, vals: decaying(rng, 48, 40)},
			tensor{name: p + "mlp.up_proj.weight", dt: safetensors.F32, shape: []int{56, 40}, vals: decaying(rng, 56, 40)},
			tensor{name: p + "input_layernorm.weight", dt: safetensors.BF16, shape: []int{40}, vals: gauss(rng, 40, 1)},
		)
	}
	all = append(all, tensor{name: "lm_head.weight", dt: safetensors.F16, shape: []int{64, 40}, vals: decaying(rng, 64, 40)})
	per := (len(all) + nShards - 1) / nShards
	wm := map[string]string{}
	var total int64
	for s := range nShards {
		lo, hi := s*per, min((s+1)*per, len(all))
		name := safetensors.ShardName("model", s+1, nShards)
		writeST(t, filepath.Join(dir, name), map[string]string{"format": "pt"}, all[lo:hi]...)
		vals, _, _ := readST(t, filepath.Join(dir, name))
		for i := lo; i < hi; i++ {
			all[i].vals = vals[all[i].name]
			wm[all[i].name] = name
			total += int64(all[i].dt.Size() * len(all[i].vals))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), safetensors.IndexJSON(total, wm), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "llama"}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{"version": "1.0"}`+"\n"), 0o644)
	return all
}

// folderTensors reads every tensor of a model folder through its index:
// name → dtype, shape and raw bytes; and the index's weight map.
func folderTensors(t *testing.T, dir string) (map[string]string, map[string][]byte) {
	t.Helper()
	var ix struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ix); err != nil {
		t.Fatal(err)
	}
	raw := map[string][]byte{}
	files := map[string]bool{}
	for _, f := range ix.WeightMap {
		files[f] = true
	}
	var total int64
	for name := range files {
		f, err := safetensors.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if f.Metadata()["format"] != "pt" {
			t.Errorf("%s: metadata %v lacks format pt", name, f.Metadata())
		}
		for _, ti := range f.Tensors() {
			if ix.WeightMap[ti.Name] != name {
				t.Errorf("%s in %s, index says %q", ti.Name, name, ix.WeightMap[ti.Name])
			}
			r, err := f.ReadRaw(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			raw[ti.Name] = append([]byte(fmt.Sprintf("%s%v", ti.DType, ti.Shape)), r...)
			total += ti.Size()
		}
		f.Close()
	}
	if got, ok := ix.Metadata["total_size"].(float64); !ok || int64(got) != total {
		t.Errorf("index total_size %v; the shards hold %d bytes", ix.Metadata["total_size"], total)
	}
	if len(raw) != len(ix.WeightMap) {
		t.Errorf("shards hold %d tensors, index lists %d", len(raw), len(ix.WeightMap))
	}
	return ix.WeightMap, raw
}

// sameTensors fails unless a and b hold the same tensors, byte for byte.
func sameTensors(t *testing.T, what string, a, b map[string][]byte) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("%s: %d tensors and %d", what, len(a), len(b))
	}
	var names []string
	for n := range a {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !bytes.Equal(a[n], b[n]) {
			t.Errorf("%s: tensor %s differs", what, n)
		}
	}
}

func TestFactorizeFolderWritesFolder(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	all := shardedModel(t, in, 3, 4)
	out := filepath.Join(dir, "out")
	mustCLI(t, "factorize", in, "-o", out, "--rank", "4", "--quiet", "--max-shard-size", "12KB")
	ents := listDir(t, out)
	for _, want := range []string{"config.json", "tokenizer.json", "model.safetensors.index.json"} {
		if !ents[want] {
			t.Errorf("%s missing from the output: %v", want, ents)
		}
	}
	for n := range ents {
		if strings.HasPrefix(n, ".lowrank-part") || strings.HasPrefix(n, ".lowrank-plan") {
			t.Errorf("%s left in the finished folder", n)
		}
	}
	wm, raw := folderTensors(t, out)
	if len(wm) == 0 {
		t.Fatal("empty index")
	}
	t.Logf("%d tensors; files %v", len(raw), ents)
	// One file in, the same flags: the same tensors.
	mustCLI(t, "factorize", filepath.Join(in, "model.safetensors.index.json"), "-o", filepath.Join(dir, "viaindex"), "--rank", "4", "--quiet", "--max-shard-size", "12KB")
	_, raw2 := folderTensors(t, filepath.Join(dir, "viaindex"))
	sameTensors(t, "folder and index file", raw, raw2)
	// The same tensors in one file, factorized into one file: the same
	// tensors again.
	single := filepath.Join(dir, "single.safetensors")
	writeST(t, single, map[string]string{"format": "pt"}, all...)
	mustCLI(t, "factorize", single, "-o", filepath.Join(dir, "single-out.safetensors"), "--rank", "4", "--quiet")
	sameTensors(t, "folder and single file", raw, fileTensors(t, filepath.Join(dir, "single-out.safetensors")))
	// The output folder reads back as a model.
	info := mustCLI(t, "info", out)
	for _, want := range []string{"model-00001-of-00009.safetensors", "shards"} {
		if !strings.Contains(info, want) {
			t.Errorf("info of the output lacks %q:\n%s", want, info)
		}
	}
}

// fileTensors reads every tensor of one file as folderTensors does.
func fileTensors(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw := map[string][]byte{}
	for _, ti := range f.Tensors() {
		r, err := f.ReadRaw(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		raw[ti.Name] = append([]byte(fmt.Sprintf("%s%v", ti.DType, ti.Shape)), r...)
	}
	return raw
}
