package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lowrank-go/lowrank/internal/osfile"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

func runJoin(args []string, stdout, stderr io.Writer) error {
	fl := newFlags("join", `join OUT [--report FILE] [--quiet]

Finishes a folder output written in parts (lowrank factorize|merge IN -o OUT
--shard I/N, one process per part): checks that all N parts are in OUT,
complete (every piece's size and SHA-256) and from the same input and
flags, then puts the final model folder in place of OUT at once: the
shards, model.safetensors.index.json and the input folder's other files,
byte for byte what one process writes.`, stderr)
	report := fl.String("report", "", "also write the per-tensor table of the whole run to `FILE`.json or FILE.csv")
	quiet := fl.Bool("quiet", false, "no table")
	force := fl.Bool("force", false, "overwrite an existing report")
	pos, err := parseFlags(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("join: expected one output folder, got %d arguments %q", len(pos), pos)
	}
	if *report != "" {
		if ext := strings.ToLower(filepath.Ext(*report)); ext != ".json" && ext != ".csv" {
			return usagef("join: --report %q; expected a file name ending in .json or .csv", *report)
		}
	}
	out := filepath.Clean(pos[0])
	s := &settings{report: *report, quiet: *quiet, force: *force, output: out}
	outs := newOutputSet(s.force, out)
	s.addReport(outs)
	if err := ready("join", s, outs); err != nil {
		return err
	}
	defer outs.abort()
	if fi, err := os.Lstat(out); err == nil && fi.IsDir() {
		unlock, err := lockFolder(out, true) // no part may still be writing
		if err != nil {
			return err
		}
		defer unlock()
	}
	var pl outPlan
	if err := readJSONFile(filepath.Join(out, planName), &pl); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if m, ok := readManifest(filepath.Join(out, manifestName)); ok && modelFolderCommands[m.Command] {
				fmt.Fprintf(stderr, "lowrank: %s: already joined (a finished model folder written by lowrank %s); nothing to do\n", out, m.Command)
				return nil
			}
			return fmt.Errorf("lowrank: %s: holds no %s; expected a folder written in parts by lowrank factorize or merge with --shard I/N", out, planName)
		}
		return fmt.Errorf("lowrank: %s: %v; expected the plan lowrank wrote", filepath.Join(out, planName), err)
	}
	rows, err := joinFolder(out, joinOptions{cmd: pl.Command, stderr: stderr, quiet: s.quiet})
	if err != nil {
		return err
	}
	return finish(stdout, s, reportFile{Command: pl.Command, Output: out, Policy: pl.Policy, Tensors: rows})
}

// joinOptions configure joinFolder.
type joinOptions struct {
	cmd    string
	force  bool
	quiet  bool
	stderr io.Writer
}

// joinFolder checks the parts of the folder output out and puts the final
// folder in its place; it returns the report rows of every part.
func joinFolder(out string, o joinOptions) ([]row, error) {
	// The caller holds the folder's exclusive lock (lockFolder): no part
	// writes and no other join runs.
	pp := filepath.Join(out, planName)
	planBytes, err := readRegular(pp, maxPlanBytes)
	if err != nil {
		if m, ok := readManifest(filepath.Join(out, manifestName)); ok && errors.Is(err, fs.ErrNotExist) && modelFolderCommands[m.Command] {
			// Another join finished it before this one held the folder.
			if o.stderr != nil {
				fmt.Fprintf(o.stderr, "lowrank: %s: already joined (a finished model folder written by lowrank %s); nothing to do\n", esc(out), m.Command)
			}
			return nil, errFinished
		}
		return nil, fmt.Errorf("lowrank: %s: %w", pp, unwrapPathErr(err))
	}
	var pl outPlan
	if err := readJSONFile(pp, &pl); err != nil {
		return nil, fmt.Errorf("lowrank: %s: %v; expected the plan lowrank wrote", pp, err)
	}
	_, sum := marshalPlan(&pl)
	if b, _ := marshalPlan(&pl); string(b) != string(planBytes) || pl.Version != 1 {
		return nil, fmt.Errorf("lowrank: %s: not a plan this lowrank wrote (version %d); expected every part and the join to run the same lowrank", pp, pl.Version)
	}
	removeKilledJoins(out, &pl)
	// The parts.
	ents, err := os.ReadDir(out)
	if err != nil {
		return nil, fmt.Errorf("lowrank: %s: %w", out, unwrapPathErr(err))
	}
	n := 0
	for _, e := range ents {
		if p, nn, ok := parsePartDir(e.Name()); ok {
			if n != 0 && nn != n {
				return nil, fmt.Errorf("lowrank: %s: holds parts of runs in %d and in %d parts (%s); expected the parts of one run", out, n, nn, e.Name())
			}
			n = nn
			_ = p
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("lowrank: %s: holds no part (%s*); expected the parts written with --shard I/N", out, partPrefix)
	}
	total := 0
	for _, sh := range pl.Shards {
		total += len(sh.Tensors)
	}
	mans := make([]partMan, n)
	for p := range n {
		dir := filepath.Join(out, partDirName(p, n))
		if _, err := os.Lstat(dir); err != nil {
			return nil, fmt.Errorf("lowrank: %s: part %d of %d is missing (no %s): not started, or its worker failed before writing anything; expected every part to have run", out, p, n, partDirName(p, n))
		}
		m := &mans[p]
		if err := readJSONFile(filepath.Join(dir, partManifest), m); err != nil {
			return nil, fmt.Errorf("lowrank: %s: part %d of %d has no readable manifest (%v); expected a part that ran to the end", dir, p, n, err)
		}
		switch {
		case m.Part != p || m.Parts != n:
			return nil, fmt.Errorf("lowrank: %s: the manifest says part %d of %d; expected part %d of %d", dir, m.Part, m.Parts, p, n)
		case m.Plan != sum:
			return nil, fmt.Errorf("lowrank: %s: part %d of %d is from another input or other flags (its plan differs from %s); expected every part to run the same command", dir, p, n, planName)
		case !m.Complete:
			return nil, fmt.Errorf("lowrank: %s: part %d of %d is not finished (%d pieces so far): still running, or interrupted (run it again with --resume); expected every part complete", dir, p, n, len(m.Pieces))
		}
		from := 0
		if p > 0 {
			from = mans[p-1].To
		}
		if m.From != from || m.To < m.From || (p == n-1 && m.To != total) {
			return nil, fmt.Errorf("lowrank: %s: part %d of %d did tensors %d–%d; expected the parts to follow each other from 0 to %d", dir, p, n, m.From, m.To, total)
		}
	}
	// Each shard is its pieces, in part order, and they hold exactly the
	// plan's tensors; every piece is intact.
	pieces := make([][]string, len(pl.Shards))
	var rows []row
	var concat int64
	for p := range n {
		dir := filepath.Join(out, partDirName(p, n))
		for _, pc := range mans[p].Pieces {
			if err := cmdContext.Err(); err != nil {
				return nil, errInterrupted
			}
			if pc.Shard < 0 || pc.Shard >= len(pl.Shards) || pc.File != pl.Shards[pc.Shard].Name || len(pc.Rows) != len(pc.Listed) {
				return nil, fmt.Errorf("lowrank: %s: a piece %q of shard %d does not belong to the plan; expected the manifest lowrank wrote", dir, pc.File, pc.Shard)
			}
			path := filepath.Join(dir, pc.File)
			size, h, err := hashFileCtx(path)
			if err != nil {
				if cmdContext.Err() != nil {
					return nil, errInterrupted
				}
				return nil, fmt.Errorf("lowrank: %s: part %d of %d: %v; expected every piece its manifest lists", path, p, n, unwrapPathErr(err))
			}
			if size != pc.Size || h != pc.SHA256 {
				return nil, fmt.Errorf("lowrank: %s: part %d of %d: the piece is %d bytes with SHA-256 %s but its manifest says %d bytes and %s; expected intact pieces (rerun the part with --resume)", path, p, n, size, h[:12], pc.Size, pc.SHA256[:min(12, len(pc.SHA256))])
			}
			pieces[pc.Shard] = append(pieces[pc.Shard], path)
			for i, rw := range pc.Rows {
				rw.listed = pc.Listed[i]
				rows = append(rows, rw)
			}
		}
	}
	for s, sh := range pl.Shards {
		var got []string
		for p := range n {
			for _, pc := range mans[p].Pieces {
				if pc.Shard == s {
					got = append(got, pc.Inputs...)
				}
			}
		}
		if !equalStrings(got, sh.Tensors) {
			return nil, fmt.Errorf("lowrank: %s: the parts' pieces of %s hold %d tensors; expected the %d the plan puts there, in its order", out, sh.Name, len(got), len(sh.Tensors))
		}
		if len(pieces[s]) > 1 {
			for _, p := range pieces[s] {
				if st, err := os.Stat(p); err == nil {
					concat += st.Size()
				}
			}
		}
	}
	var files []string // part 0's copies of the other files
	f0 := map[string]fileSum{}
	for _, f := range mans[0].Files {
		f0[f.Name] = f
	}
	for _, want := range pl.Other {
		if f0[want.Name] != want {
			return nil, fmt.Errorf("lowrank: %s: part 0 did not copy %s; expected the input folder's other files in %s", out, want.Name, filepath.Join(partDirName(0, n), partFiles))
		}
		p := filepath.Join(out, partDirName(0, n), partFiles, want.Name)
		if size, h, err := hashFileCtx(p); err != nil || size != want.Size || h != want.Head {
			return nil, fmt.Errorf("lowrank: %s: missing or changed since part 0 copied it; expected an intact copy (rerun part 0 with --resume)", p)
		}
		files = append(files, want.Name)
	}
	if err := checkDisk(out, concat); err != nil {
		return nil, err
	}

	// The final folder, built beside OUT.
	tmp, err := os.MkdirTemp(filepath.Dir(out), osfile.TempPattern(out))
	if err == nil {
		err = os.Chmod(tmp, 0o755)
	}
	if err != nil {
		return nil, fmt.Errorf("lowrank: %s: cannot create the final folder beside it: %w", out, unwrapPathErr(err))
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	weightMap := map[string]string{}
	var totalSize int64
	var names []string
	for s, sh := range pl.Shards {
		if cmdContext.Err() != nil {
			return nil, errInterrupted
		}
		dst := filepath.Join(tmp, sh.Name)
		if len(pieces[s]) == 1 {
			err = linkOrCopy(pieces[s][0], dst)
		} else {
			err = concatPieces(pieces[s], dst, filepath.Join(out, sh.Name))
		}
		if err != nil {
			if cmdContext.Err() != nil {
				return nil, errInterrupted
			}
			return nil, err
		}
		f, err := safetensors.Open(dst)
		if err != nil {
			return nil, err
		}
		for _, t := range f.Tensors() {
			weightMap[t.Name] = sh.Name
			totalSize += t.Size()
		}
		f.Close()
		names = append(names, sh.Name)
	}
	idx := ""
	if pl.Sharded {
		idx = pl.Prefix + safetensors.IndexSuffix
		if err := writeNew(filepath.Join(tmp, idx), safetensors.IndexJSON(totalSize, weightMap)); err != nil {
			return nil, err
		}
	}
	for _, name := range files {
		if err := linkOrCopy(filepath.Join(out, partDirName(0, n), partFiles, name), filepath.Join(tmp, name)); err != nil {
			return nil, err
		}
	}
	all := append(append([]string{}, names...), files...)
	if idx != "" {
		all = append(all, idx)
	}
	all = append(all, manifestName)
	mj := modelManifestJSON(pl.Command, all, &modelInfo{Index: idx, Shards: names, Copied: files, Skipped: pl.Skipped, Plan: sum})
	if err := writeNew(filepath.Join(tmp, manifestName), mj); err != nil {
		return nil, err
	}
	osfile.SyncDir(tmp)
	if cmdContext.Err() != nil {
		return nil, errInterrupted
	}
	// Put it in place of OUT at once, then remove what OUT held.
	var old string
	if exchangeDirs(tmp, out) == nil {
		old = tmp
	} else {
		old = tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return nil, fmt.Errorf("lowrank: %s: cannot move the parts aside: %w", out, unwrapPathErr(err))
		}
		if err := os.Rename(tmp, out); err != nil {
			os.Rename(old, out)
			return nil, fmt.Errorf("lowrank: %s: cannot rename the final folder into place: %w", out, unwrapPathErr(err))
		}
	}
	done = true
	osfile.SyncDir(filepath.Dir(out))
	if err := removeModelFolder(old); err != nil && o.stderr != nil {
		fmt.Fprintln(o.stderr, oneLine(err))
	}
	if len(pl.Skipped) > 0 && !o.quiet && o.stderr != nil {
		fmt.Fprintf(o.stderr, "lowrank: note: not copied from the input folder: %s\n", esc(strings.Join(pl.Skipped, ", ")))
	}
	return rows, nil
}

// removeKilledJoins removes what joins of out killed on the way left
// beside it (the join lock is held, so no other join is running): the
// folders .OUT.tmp-* in which a join built the final folder (hard links of
// the pieces, copies of split shards: as large as the model) or into which
// it had swapped the parts. Only what a join writes there is removed (the
// plan's shards, its index and other files, the manifest, the plan and the
// parts' folders), and a folder only when that empties it.
func removeKilledJoins(out string, pl *outPlan) {
	ours := map[string]bool{manifestName: true, pl.Prefix + safetensors.IndexSuffix: true}
	for _, sh := range pl.Shards {
		ours[sh.Name] = true
	}
	for _, f := range pl.Other {
		ours[f.Name] = true
	}
	dirs, _ := filepath.Glob(filepath.Join(filepath.Dir(out), osfile.TempPattern(out)))
	for _, d := range dirs {
		if st, err := os.Lstat(d); err != nil || !st.IsDir() {
			continue
		}
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			p := filepath.Join(d, e.Name())
			switch {
			case isPartial(e.Name()):
				removePartial(p)
			case ours[e.Name()] && e.Type().IsRegular():
				os.Remove(p)
			}
		}
		os.Remove(d) // fails, and keeps it, when something else is in it
	}
}

// equalStrings reports whether a and b hold the same strings in order.
func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// hashFileCtx is hashFile, stopped by SIGINT/SIGTERM.
func hashFileCtx(path string) (int64, string, error) {
	if cmdContext.Err() != nil {
		return 0, "", errInterrupted
	}
	return hashFile(path)
}

// linkOrCopy makes dst a hard link of src, or a copy where the file
// system has none.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return copyFile(src, dst)
}

// writeNew writes data to the new file path and syncs it.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("lowrank: %s: cannot create: %w", path, unwrapPathErr(err))
	}
	return writeSynced(f, path, data)
}

// concatPieces writes the shard made of the pieces (complete safetensors
// files of consecutive tensors) to dst: their tensors in order, their
// metadata (the lowrank records merged), as one writer would have.
func concatPieces(pieces []string, dst, name string) error {
	var files []*safetensors.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	reserve := 0
	meta := map[string]string{}
	var records []string
	for _, p := range pieces {
		f, err := safetensors.Open(p)
		if err != nil {
			return err
		}
		files = append(files, f)
		reserve += f.HeaderEstimate()
		for k, v := range f.Metadata() {
			if k == model.MetadataKey {
				records = append(records, v)
				continue
			}
			if old, ok := meta[k]; ok && old != v {
				return fmt.Errorf("lowrank: %s: its pieces record different metadata %q (%q and %q); expected pieces of one run", name, k, old, v)
			}
			meta[k] = v
		}
	}
	if len(records) > 0 {
		if len(records) != len(files) {
			return fmt.Errorf("lowrank: %s: only some of its pieces hold %q metadata; expected pieces of one run", name, model.MetadataKey)
		}
		m, err := model.MergeRecorded(records...)
		if err != nil {
			return fmt.Errorf("lowrank: %s: %s", name, strip(err))
		}
		meta[model.MetadataKey] = m
	}
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("lowrank: %s: cannot create: %w", dst, unwrapPathErr(err))
	}
	w, err := safetensors.NewWriter(f, name, safetensors.WriterOptions{HeaderReserve: reserve})
	if err != nil {
		f.Close()
		return err
	}
	for _, pf := range files {
		for ti, t := range pf.Tensors() {
			if ti&63 == 0 && cmdContext.Err() != nil {
				w.Abort()
				return errInterrupted
			}
			sec, err := pf.Section(t.Name)
			if err == nil {
				err = w.WriteFrom(t.Name, t.DType, t.Shape, sec)
			}
			if err != nil {
				w.Abort()
				return err
			}
		}
	}
	w.SetMetadata(meta)
	return w.Close()
}

// removeModelFolder removes a folder that held a model folder output or
// the parts of one: the files its manifest lists, the entries of parts,
// then the folder (only if that emptied it).
func removeModelFolder(dir string) error {
	if m, ok := readManifest(filepath.Join(dir, manifestName)); ok {
		for _, n := range m.Files {
			p := filepath.Join(dir, n)
			if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() {
				os.Remove(p)
			}
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if isPartial(e.Name()) {
			removePartial(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(filepath.Join(dir, manifestName))
	if err := os.Remove(dir); err != nil {
		return fmt.Errorf("lowrank: the output is in place, but the folder it replaced, now %s, held files lowrank did not write; they were kept there", dir)
	}
	return nil
}

// modelInfo is what a model folder's manifest says of it, besides its
// files.
type modelInfo struct {
	Index   string   `json:"index,omitempty"`
	Shards  []string `json:"shards"`
	Copied  []string `json:"copied,omitempty"`
	Skipped []string `json:"not_copied,omitempty"`
	// Plan is the SHA-256 of the plan the folder was built from (the
	// input's identity, the flags, the layout): --resume of the same
	// command finds the folder finished.
	Plan string `json:"plan,omitempty"`
}
