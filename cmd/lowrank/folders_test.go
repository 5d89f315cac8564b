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
	return writeFolder(t, dir, nShards, all)
}

// writeFolder writes tensors as a model folder of nShards shards with its
// index, a config.json and a tokenizer file; it returns the tensors with
// the values stored.
func writeFolder(t *testing.T, dir string, nShards int, all []tensor) []tensor {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	all = append([]tensor(nil), all...)
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
	mustCLI(t, "factorize", in, "-o", out, "--rank", "4", "--quiet", "--max-shard-size", "4KB")
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
	mustCLI(t, "factorize", filepath.Join(in, "model.safetensors.index.json"), "-o", filepath.Join(dir, "viaindex"), "--rank", "4", "--quiet", "--max-shard-size", "4KB")
	_, raw2 := folderTensors(t, filepath.Join(dir, "viaindex"))
	sameTensors(t, "folder and index file", raw, raw2)
	// The same tensors in one file, factorized into one file: the same
	// tensors again.
	single := filepath.Join(dir, "single.safetensors")
	writeST(t, single, map[string]string{"format": "pt"}, all...)
	mustCLI(t, "factorize", single, "-o", filepath.Join(dir, "single-out.safetensors"), "--rank", "4", "--quiet")
	sameTensors(t, "folder and single file", raw, fileTensors(t, filepath.Join(dir, "single-out.safetensors")))
	// --dry-run on a folder writes nothing.
	dry := mustCLI(t, "factorize", in, "--dry-run", "--rank", "4")
	if !strings.Contains(dry, "model.layers.0.mlp.up_proj.weight") {
		t.Errorf("--dry-run on a folder lists no tensor:\n%s", dry)
	}
	// info --json of a folder: its index and shards.
	var docs []struct {
		Kind   string `json:"kind"`
		Index  string `json:"index"`
		Shards []struct {
			Tensors []struct{ Name string } `json:"tensors"`
		} `json:"shards"`
		Totals *struct {
			Tensors        int    `json:"tensors"`
			TensorBytes    int64  `json:"tensor_bytes"`
			IndexTotalSize *int64 `json:"index_total_size"`
		} `json:"totals"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "info", "--json", out)), &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].Totals == nil || docs[0].Totals.Tensors != len(raw) || docs[0].Totals.IndexTotalSize == nil || *docs[0].Totals.IndexTotalSize != docs[0].Totals.TensorBytes {
		t.Errorf("info --json of the folder: totals %+v; expected %d tensors, the index's total_size equal to the tensor bytes", docs[0].Totals, len(raw))
	}
	if len(docs) != 1 || docs[0].Kind != "model-folder" || docs[0].Index != "model.safetensors.index.json" || len(docs[0].Shards) != 4 {
		// 4: lm_head, kept dense (5120 bytes), alone past the 4KB limit.
		t.Errorf("info --json of the folder: %+v", docs)
	}
	// The output folder reads back as a model.
	info := mustCLI(t, "info", out)
	for _, want := range []string{"model-00001-of-00004.safetensors", "shards"} {
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

// concatFile writes the tensors of a model folder into one file.
func concatFile(t *testing.T, path string, all []tensor) {
	t.Helper()
	writeST(t, path, map[string]string{"format": "pt"}, all...)
}

func TestExtractMergeDensifyFolders(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	all := shardedModel(t, base, 3, 3)
	// The tuned model: a rank-2 change to every q_proj, other shards.
	rng := rand.New(rand.NewPCG(5, 6))
	tuned := append([]tensor(nil), all...)
	for i, x := range tuned {
		if strings.HasSuffix(x.name, "q_proj.weight") {
			v := append([]float64(nil), x.vals...)
			delta := lowRankMat(rng, x.shape[0], x.shape[1], 2, 0.5)
			for j := range v {
				v[j] += delta[j]
			}
			tuned[i].vals = v
		}
	}
	tunedDir := filepath.Join(dir, "tuned")
	tuned = writeFolder(t, tunedDir, 2, tuned)
	baseFile, tunedFile := filepath.Join(dir, "base.safetensors"), filepath.Join(dir, "tuned.safetensors")
	concatFile(t, baseFile, all)
	concatFile(t, tunedFile, tuned)

	// extract from folders: one adapter, the same as from files.
	adF, adS := filepath.Join(dir, "ad-folder"), filepath.Join(dir, "ad-file")
	mustCLI(t, "extract", "--base", base, "--tuned", filepath.Join(tunedDir, "model.safetensors.index.json"), "-o", adF, "--rank", "2", "--quiet")
	mustCLI(t, "extract", "--base", baseFile, "--tuned", tunedFile, "-o", adS, "--rank", "2", "--quiet")
	sameTensors(t, "adapter from folders and from files", fileTensors(t, filepath.Join(adF, "adapter_model.safetensors")), fileTensors(t, filepath.Join(adS, "adapter_model.safetensors")))

	// merge into the base folder: a folder, the same tensors as a merge
	// into the one-file base, the other files copied.
	mF, mS := filepath.Join(dir, "merged"), filepath.Join(dir, "merged.safetensors")
	mustCLI(t, "merge", "--base", base, "--adapter", adF, "-o", mF, "--quiet")
	mustCLI(t, "merge", "--base", baseFile, "--adapter", adF, "-o", mS, "--quiet")
	wm, raw := folderTensors(t, mF)
	sameTensors(t, "merged folder and merged file", raw, fileTensors(t, mS))
	for _, x := range all {
		if wm[x.name] == "" {
			t.Errorf("%s not in the merged index", x.name)
		}
	}
	if b, err := os.ReadFile(filepath.Join(mF, "config.json")); err != nil || string(b) != `{"model_type": "llama"}`+"\n" {
		t.Errorf("config.json not copied unchanged: %q %v", b, err)
	}
	// The merged folder holds the tuned weights (to the adapter's error).
	vals := map[string][]float64{}
	shards := map[string]bool{}
	for _, f := range wm {
		shards[f] = true
	}
	for name := range shards {
		v, _, _ := readST(t, filepath.Join(mF, name))
		for k, x := range v {
			vals[k] = x
		}
	}
	for _, x := range tuned {
		if e := relDiff(vals[x.name], x.vals); e > 0.02 {
			t.Errorf("%s: merged differs from tuned by %.3g", x.name, e)
		}
	}

	// densify a factorized folder: a folder, the same as from one file.
	fF, fS := filepath.Join(dir, "fact"), filepath.Join(dir, "fact.safetensors")
	mustCLI(t, "factorize", base, "-o", fF, "--rank", "3", "--quiet")
	mustCLI(t, "factorize", baseFile, "-o", fS, "--rank", "3", "--quiet")
	dF, dS := filepath.Join(dir, "dense"), filepath.Join(dir, "dense.safetensors")
	mustCLI(t, "merge", fF, "-o", dF, "--quiet")
	mustCLI(t, "merge", fS, "-o", dS, "--quiet")
	_, draw := folderTensors(t, dF)
	sameTensors(t, "densified folder and file", draw, fileTensors(t, dS))
}

// TestBrokenIndexRefusedByEveryCommand checks that every command reading a
// model refuses a folder whose index does not match its shards, with one
// lowrank: line naming the index, the shard and the tensor, and leaves
// nothing behind.
func TestBrokenIndexRefusedByEveryCommand(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	all := shardedModel(t, in, 3, 2)
	good, tuned := filepath.Join(dir, "good"), filepath.Join(dir, "tuned")
	gt := shardedModel(t, good, 2, 2)
	for i := range gt {
		v := append([]float64(nil), gt[i].vals...)
		for j := range v {
			v[j] *= 1.5
		}
		gt[i].vals = v
	}
	writeFolder(t, tuned, 2, gt)
	ad := filepath.Join(dir, "ad")
	mustCLI(t, "extract", "--base", good, "--tuned", tuned, "-o", ad, "--rank", "1", "--quiet")
	ix := filepath.Join(in, "model.safetensors.index.json")
	// The index puts the first tensor in the third shard.
	wm := map[string]string{}
	for i, x := range all {
		wm[x.name] = safetensors.ShardName("model", min(i/((len(all)+2)/3), 2)+1, 3)
	}
	first := all[0].name
	wm[first] = safetensors.ShardName("model", 3, 3)
	if err := os.WriteFile(ix, safetensors.IndexJSON(1, wm), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []string{"model.safetensors.index.json", `tensor "` + first + `"`, "model-00001-of-00003.safetensors"}
	for _, args := range [][]string{
		{"info", in},
		{"info", ix},
		{"factorize", in, "-o", filepath.Join(dir, "out"), "--rank", "2"},
		{"merge", "--base", in, "--adapter", ad, "-o", filepath.Join(dir, "out")},
		{"merge", in, "-o", filepath.Join(dir, "out")},
		{"extract", "--base", in, "--tuned", good, "-o", filepath.Join(dir, "out2"), "--rank", "1"},
		{"extract", "--base", good, "--tuned", ix, "-o", filepath.Join(dir, "out2"), "--rank", "1"},
	} {
		assertFails(t, dir, nil, args, want...)
	}
	// The shards given one by one (a shell glob): the folder is suggested.
	shards, _ := filepath.Glob(filepath.Join(in, "model-*.safetensors"))
	assertFails(t, dir, nil, append([]string{"factorize", "-o", filepath.Join(dir, "out"), "--rank", "2"}, shards...), "give the folder", in)
	// A missing shard.
	os.Remove(filepath.Join(in, "model-00002-of-00003.safetensors"))
	assertFails(t, dir, nil, []string{"factorize", in, "-o", filepath.Join(dir, "out"), "--rank", "2"}, "model-00002-of-00003.safetensors", "is missing")
}

// TestMaxShardSizeOnAFile checks that --max-shard-size with a single-file
// input writes a sharded folder (shards within the limit, the index, the
// tensors of a one-file run).
func TestMaxShardSizeOnAFile(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "model.safetensors")
	modelFile(t, in)
	out := filepath.Join(dir, "out")
	mustCLI(t, "factorize", in, "-o", out, "--rank", "3", "--quiet", "--max-shard-size", "2KiB")
	wm, raw := folderTensors(t, out)
	shards := map[string]bool{}
	for _, f := range wm {
		shards[f] = true
	}
	if len(shards) < 2 {
		t.Errorf("%d shards; want several of at most 2 KiB", len(shards))
	}
	for f := range shards {
		fi, err := safetensors.Open(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, ti := range fi.Tensors() {
			n += ti.Size()
		}
		fi.Close()
		if n > 2<<10 && len(fi.Tensors()) > 2 {
			t.Errorf("%s holds %d bytes of tensors; the limit is 2 KiB", f, n)
		}
	}
	mustCLI(t, "factorize", in, "-o", filepath.Join(dir, "one.safetensors"), "--rank", "3", "--quiet")
	sameTensors(t, "sharded and one file", raw, fileTensors(t, filepath.Join(dir, "one.safetensors")))
}

// With --rank N the shard layout counts each tensor at the size of its
// factors when they will be written (and at its dense size when
// --min-saving or the break-even keeps it dense), so a compressed model
// packs into few shards, each within --max-shard-size.
func TestShardLayoutFromFixedRank(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	var all []tensor
	for l := range 8 {
		all = append(all, tensor{name: fmt.Sprintf("layers.%d.fc.weight", l), dt: safetensors.F32, shape: []int{64, 64}, vals: decaying(rng, 64, 64)})
	}
	in := filepath.Join(dir, "in")
	writeFolder(t, in, 2, all)
	const max = 8 << 10
	shards := func(out string) (n int) {
		t.Helper()
		ents, err := os.ReadDir(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".safetensors") {
				continue
			}
			n++
			f, err := safetensors.Open(filepath.Join(out, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			var bytes int64
			for _, ti := range f.Tensors() {
				bytes += ti.Size()
			}
			if bytes > max && len(f.Tensors()) > 1 {
				t.Errorf("%s holds %d bytes of tensors in %d tensors; expected at most --max-shard-size %d", e.Name(), bytes, len(f.Tensors()), max)
			}
			f.Close()
		}
		return n
	}
	// Rank 4: factors of 4·(64+64)·4 = 2 KiB each, four to a shard.
	out := filepath.Join(dir, "r4")
	mustCLI(t, "factorize", in, "-o", out, "--rank", "4", "--quiet", "--max-shard-size", "8KiB")
	if n := shards(out); n != 2 {
		t.Errorf("--rank 4: %d shards; expected 2 (the layout planned from the factors' size, not the dense 16 KiB)", n)
	}
	// --round 8 makes the rank 8: 4 KiB each, two to a shard.
	out = filepath.Join(dir, "r4round8")
	mustCLI(t, "factorize", in, "-o", out, "--rank", "4", "--round", "8", "--quiet", "--max-shard-size", "8KiB")
	if n := shards(out); n != 4 {
		t.Errorf("--rank 4 --round 8: %d shards; expected 4", n)
	}
	// Rank 30 saves 6%, below --min-saving 0.1: every tensor stays dense
	// (16 KiB), one to a shard.
	out = filepath.Join(dir, "r30")
	mustCLI(t, "factorize", in, "-o", out, "--rank", "30", "--quiet", "--max-shard-size", "8KiB")
	if n := shards(out); n != 8 {
		t.Errorf("--rank 30: %d shards; expected 8 (dense tensors, one each)", n)
	}
}

// An embedding kept dense by name under --rank N counts at its dense size
// in the shard layout: planned at the size of its factors, it shared a
// shard with other tensors and took that shard far past --max-shard-size.
func TestShardLayoutKeptEmbeddingDense(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	all := []tensor{{name: "model.embed_tokens.weight", dt: safetensors.BF16, shape: []int{100, 64}, vals: gauss(rng, 100*64, 1)}}
	for l := range 3 {
		all = append(all, tensor{name: fmt.Sprintf("model.layers.%d.self_attn.q_proj.weight", l), dt: safetensors.BF16, shape: []int{64, 64}, vals: decaying(rng, 64, 64)})
	}
	in := filepath.Join(dir, "in")
	writeFolder(t, in, 2, all)
	out := filepath.Join(dir, "out")
	const max = 5000
	mustCLI(t, "factorize", in, "-o", out, "--rank", "4", "--quiet", "--max-shard-size", "5KB")
	wm, _ := folderTensors(t, out)
	per := map[string][]string{}
	for n, f := range wm {
		per[f] = append(per[f], n)
	}
	for f, names := range per {
		fi, err := safetensors.Open(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, ti := range fi.Tensors() {
			n += ti.Size()
		}
		fi.Close()
		if n > max && len(names) > 1 {
			t.Errorf("%s holds %d bytes in %d tensors %v; expected at most --max-shard-size 5KB unless one tensor alone", f, n, len(names), names)
		}
	}
}

// TestInfoOfFoldersNeitherModelNorAdapter: info of a folder that is not a
// model folder said "adapter_config.json not found", the message issue 12
// started from, for shards whose index is missing (an interrupted
// download) and for a folder output not yet joined. It now says what it
// expected, and for the latter to run lowrank join.
func TestInfoOfFoldersNeitherModelNorAdapter(t *testing.T) {
	dir := t.TempDir()
	noIndex := filepath.Join(dir, "noindex")
	shardedModel(t, noIndex, 2, 1)
	os.Remove(filepath.Join(noIndex, "model.safetensors.index.json"))
	assertFails(t, dir, nil, []string{"info", noIndex}, "model.safetensors.index.json", "expected a model folder, a PEFT adapter folder (adapter_config.json) or a .safetensors file")

	in := filepath.Join(dir, "in")
	shardedModel(t, in, 2, 1)
	parts := filepath.Join(dir, "parts")
	mustCLI(t, "factorize", in, "-o", parts, "--rank", "2", "--quiet", "--shard", "0/2")
	assertFails(t, dir, nil, []string{"info", parts}, "not joined", "lowrank join")
	assertFails(t, dir, nil, []string{"info", "--json", parts}, "not joined", "lowrank join")
}
