package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// isModelPath reports whether info should show path as a model folder (a
// folder without adapter_config.json that holds model.safetensors, an index
// or diffusers' names) or an index file, rather than as one file or an
// adapter folder.
func isModelPath(path string, dir bool) bool {
	if !dir {
		return strings.HasSuffix(path, safetensors.IndexSuffix)
	}
	if _, err := os.Lstat(filepath.Join(path, peftConfigName)); err == nil {
		return false
	}
	for _, p := range model.Prefixes {
		for _, name := range []string{p + ".safetensors", p + safetensors.IndexSuffix} {
			if _, err := os.Lstat(filepath.Join(path, name)); err == nil {
				return true
			}
		}
	}
	return false
}

// neitherModelNorAdapter returns why info cannot show the folder path,
// which holds no model weights files (isModelPath is false), or nil when
// it is an adapter folder (adapter_config.json or adapter_model.safetensors).
func neitherModelNorAdapter(path string) error {
	for _, n := range []string{peftConfigName, "adapter_model.safetensors"} {
		if _, err := os.Lstat(filepath.Join(path, n)); err == nil {
			return nil // an adapter folder (adapterInfo says what it lacks)
		}
	}
	if _, err := os.Lstat(filepath.Join(path, planName)); err == nil {
		return fmt.Errorf("lowrank: %s: holds a folder output not joined yet (the parts of lowrank factorize or merge --shard I/N, or an interrupted run); expected a finished folder: run lowrank join %s once every part is complete (an interrupted run: its command again with --resume)", path, path)
	}
	var names []string
	for _, p := range model.Prefixes {
		names = append(names, p+".safetensors", p+safetensors.IndexSuffix)
	}
	return fmt.Errorf("lowrank: %s: is a folder without %s, %s%s; expected a model folder, a PEFT adapter folder (adapter_config.json) or a .safetensors file", path, peftConfigName, strings.Join(names, ", "), model.OtherWeightsHint(path))
}

// modelFolderInfo shows a model folder or index file as model.OpenCheckpoint
// reads it (the index checked against its shards): the weights of a lone
// model.safetensors as fileInfo does; for shards, each shard with its
// tensors and bytes, the totals, the metadata, every tensor with its
// shard, and the lowrank records of all shards together.
func modelFolderInfo(out io.Writer, path string, mem *budget) error {
	c, err := mem.openModel(path)
	if err != nil {
		return err
	}
	defer c.Close()
	files, names := c.Files(), c.FileNames()
	if !c.Sharded() {
		fmt.Fprintf(out, "%s: model folder, weights in %s\n\n", path, esc(names[0]))
		return fileInfo(out, files[0])
	}
	w := bufio.NewWriterSize(out, 1<<16)
	defer w.Flush()
	ts := c.Tensors()
	var params, data int64
	for _, t := range ts {
		params += int64(t.NumElements())
		data += t.Size()
	}
	ix := c.Index()
	fmt.Fprintf(w, "%s: model folder, %d shards (index %s), %d tensors, %d parameters, %s of tensor data, %s on disk\n",
		path, len(files), esc(filepath.Base(ix.Path)), len(ts), params, humanBytes(data), humanBytes(c.Size()))
	if ix.TotalSize >= 0 && ix.TotalSize != data {
		fmt.Fprintf(w, "(the index's metadata.total_size says %d bytes; the shards hold %d)\n", ix.TotalSize, data)
	}
	fmt.Fprintln(w)
	shardOf := map[string]string{}
	err = columns(w, len(files), []string{"shard", "tensors", "parameters", "bytes"}, func(i int) []string {
		var p int64
		for _, t := range files[i].Tensors() {
			p += int64(t.NumElements())
			shardOf[t.Name] = names[i]
		}
		return []string{esc(names[i]), strconv.Itoa(len(files[i].Tensors())), strconv.FormatInt(p, 10), strconv.FormatInt(files[i].Size(), 10)}
	})
	if err != nil {
		return err
	}
	md := c.Metadata()
	keys := make([]string, 0, len(md))
	var records []string
	for k := range md {
		if k == metaKey {
			continue
		}
		keys = append(keys, k)
	}
	for _, f := range files {
		if r, ok := f.Metadata()[metaKey]; ok {
			records = append(records, r)
		}
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		fmt.Fprintln(w, "\nmetadata (as recorded in the shards):")
		for _, k := range keys {
			v := md[k]
			if r := []rune(v); len(r) > 120 {
				v = string(r[:117]) + "…"
			}
			fmt.Fprintf(w, "  %s: %s\n", esc(k), esc(v))
		}
	}
	fmt.Fprintln(w)
	err = columns(w, len(ts), []string{"tensor", "dtype", "shape", "bytes", "shard"}, func(i int) []string {
		t := ts[i]
		return []string{esc(t.Name), string(t.DType), shapeString(t.Shape), strconv.FormatInt(t.Size(), 10), esc(shardOf[t.Name])}
	})
	if err != nil {
		return err
	}
	if len(records) == 0 {
		return nil
	}
	raw, err := model.MergeRecorded(records...)
	if err == nil {
		var m *model.Metadata
		if m, err = model.ParseMetadata(raw); err == nil {
			fmt.Fprintf(w, "\nlowrank metadata, as recorded by %d of the shards (not verified): policy %s, split %s, %d factorized tensors, %d kept dense\n",
				len(records), esc(m.Policy), esc(m.Split), len(m.Tensors), len(m.Dense))
			return nil
		}
	}
	fmt.Fprintf(w, "\n(%s)\n", strip(err))
	return nil
}

// modelFolderJSON is info --json's document of a model folder or index
// file: every weight file as fileDoc shows a file.
func modelFolderJSON(path string, mem *budget) (infoDoc, error) {
	c, err := mem.openModel(path)
	if err != nil {
		return infoDoc{}, err
	}
	defer c.Close()
	tot := &infoTotals{Tensors: len(c.Tensors()), Bytes: c.Size()}
	for _, t := range c.Tensors() {
		tot.Parameters += int64(t.NumElements())
		tot.TensorBytes += t.Size()
	}
	d := infoDoc{Path: path, Kind: "model-folder", Totals: tot}
	if ix := c.Index(); ix != nil {
		d.Index = filepath.Base(ix.Path)
		if ix.TotalSize >= 0 {
			tot.IndexTotalSize = &ix.TotalSize
		}
	}
	for _, f := range c.Files() {
		fd, err := fileDoc(f)
		if err != nil {
			return infoDoc{}, err
		}
		d.Shards = append(d.Shards, fd)
	}
	return d, nil
}
