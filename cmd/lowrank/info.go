package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

func runInfo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("info", "info [--json] FILE.safetensors|MODEL_DIR|INDEX.json|ADAPTER_DIR ...", stderr)
	asJSON := fs.Bool("json", false, "print one JSON array, an object per path (tensors, metadata, lowrank's records, adapter modules), instead of the tables")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("info: expected one or more files or adapter folders")
	}
	if err := parsed("info", pos); err != nil {
		return err
	}
	mem, err := newBudget(0)
	if err != nil {
		return err
	}
	defer mem.restore()
	var docs []infoDoc
	for i, path := range pos {
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("lowrank: %s: %w; expected a .safetensors file, a model folder, an index file or an adapter folder", path, unwrapPathErr(err))
		}
		if !st.IsDir() && filepath.Base(path) == peftConfigName {
			return fmt.Errorf("lowrank: %s: is the config of the PEFT adapter folder %s; expected that folder as the adapter", path, filepath.Dir(path))
		}
		isModel := isModelPath(path, st.IsDir()) // info_folder.go
		if st.IsDir() && !isModel {
			if err := neitherModelNorAdapter(path); err != nil {
				return err
			}
		}
		if *asJSON && isModel {
			d, err := modelFolderJSON(path, mem)
			if err != nil {
				return err
			}
			docs = append(docs, d)
			continue
		}
		if *asJSON {
			d, err := infoJSON(path, st.IsDir(), mem)
			if err != nil {
				return err
			}
			docs = append(docs, d)
			continue
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		switch {
		case isModel:
			err = modelFolderInfo(stdout, path, mem)
		case st.IsDir():
			err = adapterInfo(stdout, path, mem)
		default:
			err = openInfo(stdout, path, mem)
		}
		if err != nil {
			return err
		}
	}
	if *asJSON {
		b, err := json.MarshalIndent(docs, "", "  ")
		if err != nil {
			return fmt.Errorf("lowrank: info: %w", err)
		}
		_, err = stdout.Write(append(b, '\n'))
		return err
	}
	return nil
}

// openInfo prints the summary of the .safetensors file at path.
func openInfo(w io.Writer, path string, mem *budget) error {
	f, err := mem.open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return fileInfo(w, f)
}

// fileInfo prints a file's summary, its metadata, its tensors and, when it
// holds lowrank metadata or kohya modules, what they record. Names and
// metadata are printed escaped (esc); what the metadata claims is labelled
// as the file's claim. The tensor table is written as it goes (column
// widths from a first pass), so a million tensors print in seconds.
func fileInfo(out io.Writer, f *safetensors.File) error {
	w := bufio.NewWriterSize(out, 1<<16)
	defer w.Flush()
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
		fmt.Fprintln(w, "\nmetadata (as recorded in the file):")
		for _, k := range keys {
			v := md[k]
			if k == metaKey {
				v = "(per-tensor ranks and errors, below)"
			} else {
				if r := []rune(v); len(r) > 120 {
					v = string(r[:117]) + "…"
				}
				v = esc(v)
			}
			fmt.Fprintf(w, "  %s: %s\n", esc(k), v)
		}
	}
	fmt.Fprintln(w)
	err := columns(w, len(ts), []string{"tensor", "dtype", "shape", "bytes"}, func(i int) []string {
		t := ts[i]
		return []string{esc(t.Name), string(t.DType), shapeString(t.Shape), strconv.FormatInt(t.Size(), 10)}
	})
	if err != nil {
		return err
	}

	// factorize and extract record per-tensor ranks: shown as what the file
	// says, which this command does not verify.
	if raw, ok := md[metaKey]; ok {
		m, err := model.ParseMetadata(raw)
		if err != nil {
			fmt.Fprintf(w, "\n(%s)\n", strip(err))
			return nil
		}
		entries, what := m.Tensors, "factorized tensor"
		if len(m.Modules) > 0 {
			entries, what = m.Modules, "adapter module"
		}
		fmt.Fprintf(w, "\nlowrank metadata, as recorded by the file (not verified): policy %s, split %s\n", esc(m.Policy), esc(m.Split))
		names := make([]string, 0, len(entries))
		for n := range entries {
			names = append(names, n)
		}
		sort.Strings(names)
		dense := make([]string, 0, len(m.Dense))
		for n := range m.Dense {
			dense = append(dense, n)
		}
		sort.Strings(dense)
		// Factors computed with input statistics (factorize --calibration)
		// also record their output error: a column of its own.
		calibrated := false
		for _, e := range entries {
			calibrated = calibrated || e.OutputRelError != nil
		}
		head := []string{what, "shape", "rank", "rel.err", "energy"}
		if calibrated {
			head = []string{what, "shape", "rank", "rel.err", "out.err", "energy"}
		}
		err = columns(w, len(names)+len(dense), head, func(i int) []string {
			if i >= len(names) {
				n := dense[i-len(names)]
				if calibrated {
					return []string{esc(n), "", "dense", "", "", "(" + esc(m.Dense[n]) + ")"}
				}
				return []string{esc(n), "", "dense", "", "(" + esc(m.Dense[n]) + ")"}
			}
			e := entries[names[i]]
			row := []string{esc(names[i]), shapeString(e.Shape), strconv.Itoa(e.Rank), fmt.Sprintf("%.2e", e.RelError), fmt.Sprintf("%.4f", e.Energy)}
			if calibrated {
				out := "- (plain)"
				if e.OutputRelError != nil {
					out = fmt.Sprintf("%.2e", *e.OutputRelError)
				}
				row = append(row[:4], out, row[4])
			}
			return row
		})
		if err != nil {
			return err
		}
	}
	if model.IsKohya(f) {
		fmt.Fprintln(w, "\nkohya LoRA modules:")
		var downs []safetensors.TensorInfo
		odd := 0 // lora_down tensors neither 2-D nor 4-D
		var other []string
		for _, t := range ts {
			if !isKohyaKey(t.Name) {
				other = append(other, t.Name)
			}
			if strings.HasSuffix(t.Name, ".lora_down.weight") {
				if len(t.Shape) == 2 || len(t.Shape) == 4 {
					downs = append(downs, t)
				} else {
					odd++
				}
			}
		}
		defer func() {
			if odd > 0 {
				fmt.Fprintf(w, "(%d lora_down tensors neither 2-D (Linear) nor 4-D (Conv2d) not listed: not a LoRA layout lowrank reads)\n", odd)
			}
			if len(other) > 0 {
				ex := make([]string, 0, 3)
				for _, n := range other[:min(3, len(other))] {
					ex = append(ex, strconv.Quote(n))
				}
				more := ""
				if len(other) > 3 {
					more = fmt.Sprintf(" and %d more", len(other)-3)
				}
				fmt.Fprintf(w, "(%d tensors are no part of a LoRA module above: %s%s; a module with them (LyCORIS lora_mid, LoHa hada_*, LoKr lokr_*, DoRA dora_scale, full diff) is not what the table shows, and lowrank merge refuses the file)\n", len(other), esc(strings.Join(ex, ", ")), more)
			}
		}()
		err := columns(w, len(downs), []string{"name", "kind", "up (d×r)", "down (r×k)", "alpha", "scaling"}, func(i int) []string {
			k := kohyaModuleOf(f, downs[i])
			return []string{esc(k.Name), k.Kind, shapeString(k.Up), shapeString(k.Down), k.alphaText(), k.scalingText()}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// columns writes a table of n rows under header, each row's cells from
// row(i), in columns two spaces apart: a first pass finds the widths, the
// second writes, so no row is held. It checks for SIGINT/SIGTERM as it
// goes.
func columns(w io.Writer, n int, header []string, row func(i int) []string) error {
	width := make([]int, len(header))
	measure := func(cells []string) {
		for j, c := range cells {
			width[j] = max(width[j], utf8.RuneCountInString(c))
		}
	}
	measure(header)
	for i := range n {
		if err := tick(i); err != nil {
			return err
		}
		measure(row(i))
	}
	var line []byte
	put := func(cells []string) {
		line = line[:0]
		for j, c := range cells {
			line = append(line, c...)
			if j < len(cells)-1 {
				for k := utf8.RuneCountInString(c); k < width[j]+2; k++ {
					line = append(line, ' ')
				}
			}
		}
		line = append(bytes.TrimRight(line, " "), '\n')
		w.Write(line)
	}
	put(header)
	for i := range n {
		if err := tick(i); err != nil {
			return err
		}
		put(row(i))
	}
	return nil
}

// adapterInfo shows a PEFT adapter folder as the model package reads it
// (model.InspectAdapter: the config and the keys checked, the matrices
// shown as they are, whether they agree with the config or not).
func adapterInfo(w io.Writer, dir string, mem *budget) error {
	ad, err := model.InspectAdapter(dir, model.AdapterOptions{Context: cmdContext, Budget: mem, OpenFile: mem.open})
	if err != nil {
		if cmdContext.Err() != nil {
			return errInterrupted
		}
		return err
	}
	defer ad.Close()
	cfg, f := ad.PEFT(), ad.File()
	var pretty bytes.Buffer
	if json.Indent(&pretty, cfg.Raw, "", "  ") != nil {
		pretty.Write(cfg.Raw)
	}
	fmt.Fprintf(w, "%s: PEFT LoRA adapter\n\n%s (as written in the folder):\n%s\n", dir, peftConfigName, escJSONText(strings.TrimSpace(pretty.String())))
	mods := ad.Modules()
	fmt.Fprintf(w, "\n%s: %d modules, %s\n", peftWeightsName, len(mods), humanBytes(f.Size()))
	cells := make([][]string, len(mods))
	for i, m := range mods {
		cells[i] = []string{esc(m.Module), moduleKindText(m), shapeString(m.B.Shape), shapeString(m.A.Shape), string(m.A.DType), strconv.Itoa(m.Rank), fmt.Sprintf("%g", m.Scale)}
	}
	if err := columns(w, len(mods), []string{"module", "kind", "B (d×r)", "A (r×k)", "dtype", "rank", "scaling"}, func(i int) []string { return cells[i] }); err != nil {
		return err
	}
	if _, ok := f.Metadata()[metaKey]; ok {
		fmt.Fprintln(w)
		return fileInfo(w, f)
	}
	return nil
}
