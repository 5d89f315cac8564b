package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/lowrank-go/lowrank/internal/strictjson"
	"github.com/lowrank-go/lowrank/safetensors"
)

func runInfo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("info FILE.safetensors|ADAPTER_DIR", "info FILE.safetensors|ADAPTER_DIR", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("info: expected one file or adapter folder, got %d arguments", len(pos))
	}
	path := pos[0]
	if err := parsed("info", path); err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("lowrank: %w", err)
	}
	mem, err := newBudget(0)
	if err != nil {
		return err
	}
	defer mem.restore()
	if st.IsDir() {
		return adapterInfo(stdout, path, mem)
	}
	f, err := mem.open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fileInfo(stdout, f)
	return nil
}

func fileInfo(w io.Writer, f *safetensors.File) {
	ts := f.Tensors()
	var params int64
	for _, t := range ts {
		params += int64(t.NumElements())
	}
	fmt.Fprintf(w, "%s: %d tensors, %d parameters, %s (header %s)\n", f.Path(), len(ts), params, humanBytes(f.Size()), humanBytes(f.HeaderSize()))
	md := f.Metadata()
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		fmt.Fprintln(w, "\nmetadata:")
		for _, k := range keys {
			v := md[k]
			if k == metaKey {
				v = "(per-tensor ranks and errors, below)"
			} else if len(v) > 120 {
				v = v[:117] + "…"
			}
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tensor\tdtype\tshape\tbytes")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", t.Name, t.DType, shapeString(t.Shape), t.Size())
	}
	tw.Flush()

	// Our own factorized files and adapters carry per-tensor ranks.
	if raw, ok := md[metaKey]; ok {
		var m struct {
			Policy  string                `json:"policy"`
			Split   string                `json:"split"`
			Tensors map[string]tensorMeta `json:"tensors"`
			Modules map[string]tensorMeta `json:"modules"`
			Dense   map[string]string     `json:"dense"`
		}
		if err := strictjson.Unmarshal([]byte(raw), &m); err != nil {
			fmt.Fprintf(w, "\n(metadata %q is not lowrank's JSON: %v)\n", metaKey, err)
			return
		}
		entries, what := m.Tensors, "factorized tensor"
		if len(m.Modules) > 0 {
			entries, what = m.Modules, "adapter module"
		}
		fmt.Fprintf(w, "\nlowrank: policy %s, split %s\n", m.Policy, m.Split)
		names := make([]string, 0, len(entries))
		for n := range entries {
			names = append(names, n)
		}
		sort.Strings(names)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tshape\trank\trel.err\tenergy\n", what)
		for _, n := range names {
			e := entries[n]
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2e\t%.4f\n", n, shapeString(e.Shape), e.Rank, e.RelError, e.Energy)
		}
		dense := make([]string, 0, len(m.Dense))
		for n := range m.Dense {
			dense = append(dense, n)
		}
		sort.Strings(dense)
		for _, n := range dense {
			fmt.Fprintf(tw, "%s\t\tdense\t\t(%s)\n", n, m.Dense[n])
		}
		tw.Flush()
	}
	if isKohya(f) {
		fmt.Fprintln(w, "\nkohya LoRA modules:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "name\tup (d×r)\tdown (r×k)\talpha\tscaling")
		for _, t := range f.Tensors() {
			name, ok := strings.CutSuffix(t.Name, ".lora_down.weight")
			if !ok || len(t.Shape) != 2 {
				continue
			}
			up, _ := f.Tensor(name + ".lora_up.weight")
			alpha, scaling := "-", "1 (no alpha)"
			if a, err := f.Scalar(name + ".alpha"); err == nil {
				alpha = fmt.Sprintf("%g", a)
				scaling = fmt.Sprintf("%g", a/float64(t.Shape[0]))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, shapeString(up.Shape), shapeString(t.Shape), alpha, scaling)
		}
		tw.Flush()
	}
}

func adapterInfo(w io.Writer, dir string, mem *budget) error {
	cfg, err := readPEFTConfig(dir, mem)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, cfg.raw, "", "  ") != nil {
		pretty.Write(cfg.raw)
	}
	fmt.Fprintf(w, "%s: PEFT LoRA adapter\n\n%s:\n%s\n", dir, peftConfigName, strings.TrimSpace(pretty.String()))
	f, err := mem.open(filepath.Join(dir, peftWeightsName))
	if err != nil {
		return err
	}
	defer f.Close()
	mods, err := parsePEFTKeys(f)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s: %d modules, %s\n", peftWeightsName, len(mods), humanBytes(f.Size()))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "module\tB (d×r)\tA (r×k)\tdtype\trank\tscaling")
	for _, m := range mods {
		a, _ := f.Tensor(m.aKey)
		b, _ := f.Tensor(m.bKey)
		r, sc, err := cfg.scaling(m.module)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%g\n", m.module, shapeString(b.Shape), shapeString(a.Shape), a.DType, r, sc)
	}
	tw.Flush()
	if _, ok := f.Metadata()[metaKey]; ok {
		fmt.Fprintln(w)
		fileInfo(w, f)
	}
	return nil
}
