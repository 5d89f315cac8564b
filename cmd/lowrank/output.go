package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lowrank-go/lowrank/internal/osfile"
	"github.com/lowrank-go/lowrank/internal/strictjson"
	"github.com/lowrank-go/lowrank/safetensors"
)

// Outputs: the one way every command writes what it produces (model files,
// kohya adapters, PEFT adapter folders, reports).
//
// Before any work, a command lists its inputs and outputs in an outputSet
// and calls prepare, which
//
//   - refuses an output path that equals, contains or lies inside an input,
//     the report or another output, comparing resolved paths (symbolic
//     links followed) and device/inode numbers (hard links, bind mounts);
//   - refuses "." and "..": an output needs a name of its own;
//   - refuses an existing output that is not a previous output of the same
//     kind, even with --force: a file output replaces only a regular file
//     (a symbolic link to one is replaced as a link, never followed), a
//     folder output only a folder holding nothing but the files that
//     command writes (ownedFiles, or those its manifest lists); without
//     --force nothing existing is replaced;
//   - creates each output under a temporary name beside its final path
//     (".NAME.tmp-*", NAME cut short so that the name stays legal), so that
//     an unwritable folder is found before the work.
//
// commit renames a finished output into place (a hard link when nothing may
// be replaced, so that a file that appeared meanwhile is not clobbered; a
// rename, or for folders an atomic exchange, with --force, after checking
// again what is there); abort removes the temporary. A replaced folder is
// emptied file by file, only of the names it was allowed to hold, never
// recursively.

// manifestName is the file listing what a folder output holds, written into
// every folder output so that --force can later tell a previous output
// (which it may replace) from anything else (which it never touches).
const manifestName = ".lowrank-manifest.json"

// maxManifestBytes bounds a manifest read back: room for a model folder
// of 99999 shards (the most their names allow), listed twice.
const maxManifestBytes = 32 << 20

// manifest is the JSON in manifestName.
type manifest struct {
	Version int      `json:"version"`
	Command string   `json:"command"`
	Files   []string `json:"files"`
	// Model says what a model folder holds (factorize, merge).
	Model *modelInfo `json:"model,omitempty"`
}

// outputSet is the inputs and outputs of one command.
type outputSet struct {
	force  bool
	inputs []string
	outs   []*output
}

// output is one file or folder a command writes.
type output struct {
	path   string
	folder bool
	// owned are the names a folder output writes (and may replace).
	owned []string
	what  string // "the output", "the report"
	cmd   string
	// model: a model folder output, built in place by runFolder (parts.go),
	// which checks what exists at the path itself.
	model bool
	set   *outputSet

	tmp  string   // temporary file or folder, once prepared
	file *os.File // the temporary file of a file output
	done bool
}

func newOutputSet(force bool, inputs ...string) *outputSet {
	return &outputSet{force: force, inputs: inputs}
}

// file adds a file output (what is "the output" or "the report").
func (s *outputSet) file(path, what string) *output {
	o := &output{path: path, what: what, set: s}
	s.outs = append(s.outs, o)
	return o
}

// folder adds a folder output that cmd fills with the files owned (the
// manifest is added to them).
func (s *outputSet) folder(path, cmd string, owned ...string) *output {
	o := &output{path: path, folder: true, what: "the output folder", cmd: cmd, set: s,
		owned: append(append([]string(nil), owned...), manifestName)}
	s.outs = append(s.outs, o)
	return o
}

// modelFolder adds a model folder output (factorize, merge of a folder):
// only its place among the inputs and outputs is checked here; runFolder
// checks what exists at the path and builds the folder.
func (s *outputSet) modelFolder(path, cmd string) *output {
	o := &output{path: path, folder: true, model: true, what: "the output folder", cmd: cmd, set: s}
	s.outs = append(s.outs, o)
	return o
}

// prepare checks every output against the inputs, the other outputs and
// what exists at its path, then creates the temporaries. On error nothing
// is left.
func (s *outputSet) prepare() error {
	if err := s.check(); err != nil {
		return err
	}
	for _, o := range s.outs {
		if err := o.begin(); err != nil {
			s.abort()
			return err
		}
	}
	return nil
}

// abort removes every temporary not yet committed.
func (s *outputSet) abort() {
	for _, o := range s.outs {
		o.abort()
	}
}

// check runs the checks of prepare without creating anything.
func (s *outputSet) check() error {
	var ins []place
	for _, p := range s.inputs {
		if p != "" {
			ins = append(ins, locate(p))
		}
	}
	outs := make([]place, len(s.outs))
	for i, o := range s.outs {
		if o.path == "-" {
			return fmt.Errorf("lowrank: -: %s cannot be standard output (outputs are written whole to a temporary file, then renamed); expected a file path (./- for a file named -)", o.what)
		}
		b := filepath.Base(filepath.Clean(o.path))
		if b == "." || b == ".." || b == string(filepath.Separator) {
			return fmt.Errorf("lowrank: %s: %s is a reference to a folder, not a name; expected a new name for %s (such as out.safetensors)", o.path, o.path, o.what)
		}
		outs[i] = locate(o.path)
		for _, in := range ins {
			if rel := relation(outs[i], in); rel != "" {
				return fmt.Errorf("lowrank: %s: %s %s %s; expected an output path apart from every input", o.path, o.what, rel, in.given)
			}
		}
		for j := range i {
			if rel := relation(outs[i], outs[j]); rel != "" {
				return fmt.Errorf("lowrank: %s: %s %s %s, %s; expected separate paths", o.path, o.what, rel, s.outs[j].what, s.outs[j].path)
			}
		}
	}
	for _, o := range s.outs {
		if err := o.checkExisting(); err != nil {
			return err
		}
	}
	return nil
}

// place is a path as given and where it leads.
type place struct {
	given string
	// entry is the absolute path with its folder resolved (symbolic links
	// followed) and its last element kept; target is the path with every
	// link followed ("" when nothing is there).
	entry, target string
	info          fs.FileInfo // of target (nil when nothing is there)
}

func locate(path string) place {
	p := place{given: path}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = filepath.Clean(path)
	}
	dir, base := filepath.Split(abs)
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	p.entry = filepath.Join(dir, base)
	if t, err := filepath.EvalSymlinks(p.entry); err == nil {
		p.target = t
		p.info, _ = os.Stat(t)
	}
	return p
}

// paths returns the distinct paths that name p.
func (p place) paths() []string {
	if p.target == "" || p.target == p.entry {
		return []string{p.entry}
	}
	return []string{p.entry, p.target}
}

// within reports whether path lies inside folder dir (by name).
func within(path, dir string) bool {
	if dir == string(filepath.Separator) {
		return path != dir
	}
	return strings.HasPrefix(path, dir+string(filepath.Separator))
}

// insideByInode reports whether some folder above p's target is the
// folder dir (same device and inode), which catches bind mounts that names
// do not.
func insideByInode(p place, dir fs.FileInfo) bool {
	if p.target == "" || dir == nil || !dir.IsDir() {
		return false
	}
	for d := filepath.Dir(p.target); ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && os.SameFile(st, dir) {
			return true
		}
		if d == filepath.Dir(d) {
			return false
		}
	}
}

// relation says how output o and the path p clash: "is", "contains", "is
// inside", or "" when they are apart.
func relation(o, p place) string {
	for _, a := range o.paths() {
		for _, b := range p.paths() {
			switch {
			case a == b:
				return "is"
			case within(b, a):
				return "contains"
			case within(a, b):
				return "is inside"
			}
		}
	}
	if o.info != nil && p.info != nil && os.SameFile(o.info, p.info) {
		return "is (the same file as)"
	}
	if insideByInode(p, o.info) {
		return "contains"
	}
	if insideByInode(o, p.info) {
		return "is inside"
	}
	return ""
}

// checkExisting refuses what exists at the output's path unless it is a
// previous output of the same kind and --force was given.
func (o *output) checkExisting() error {
	st, err := os.Lstat(o.path)
	if err != nil || o.model {
		return nil
	}
	if o.folder {
		return o.checkFolder(st)
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Stat(o.path)
		if err != nil || !t.Mode().IsRegular() {
			what := "a missing target"
			if err == nil {
				what = osfile.Kind(t.Mode())
			}
			return fmt.Errorf("lowrank: %s: %s is a symbolic link to %s; expected a new file name or a previous output (a regular file; --force replaces nothing else)", o.path, o.what, what)
		}
	} else if !st.Mode().IsRegular() {
		return fmt.Errorf("lowrank: %s: %s is %s; expected a new file name or a previous output (a regular file; --force replaces nothing else)", o.path, o.what, osfile.Kind(st.Mode()))
	}
	if !o.set.force {
		return fmt.Errorf("lowrank: %s: %w; expected a new file (use --force to overwrite)", o.path, safetensors.ErrExists)
	}
	return nil
}

// checkFolder refuses an existing folder output unless it holds only what
// the command writes.
func (o *output) checkFolder(st fs.FileInfo) error {
	if !st.IsDir() {
		return fmt.Errorf("lowrank: %s: exists and is %s; expected a new folder name or a folder written by a previous %s", o.path, osfile.Kind(st.Mode()), o.cmd)
	}
	if !o.set.force {
		return fmt.Errorf("lowrank: %s: %w; expected a new folder (use --force to replace a folder written by a previous %s)", o.path, safetensors.ErrExists, o.cmd)
	}
	foreign, err := o.foreign(o.path)
	if err != nil {
		return fmt.Errorf("lowrank: %s: cannot list the existing folder: %w", o.path, unwrapPathErr(err))
	}
	if m, ok := readManifest(filepath.Join(o.path, manifestName)); ok && m.Command != o.cmd && m.Command != "" {
		return fmt.Errorf("lowrank: %s: is the output of lowrank %s, not of a previous %s; --force replaces only a folder %s wrote (move it away or choose another -o)",
			o.path, m.Command, o.cmd, o.cmd)
	}
	if foreign != "" {
		return fmt.Errorf("lowrank: %s: holds %s, which lowrank %s does not write; --force replaces only a folder holding nothing but %s (move it away or choose another -o)",
			o.path, foreign, o.cmd, strings.Join(quoteAll(o.owned), ", "))
	}
	return nil
}

// foreign returns the first entry of folder dir that the output may not
// replace (quoted, with what it is), or "" when there is none. The names
// allowed are the output's own and those a manifest in the folder lists,
// when that manifest is this command's (another command's folder, such as
// a model folder of factorize, is not a previous output of this one).
func (o *output) foreign(dir string) (string, error) {
	allowed := map[string]bool{}
	for _, n := range o.owned {
		allowed[n] = true
	}
	if m, ok := readManifest(filepath.Join(dir, manifestName)); ok && m.Command == o.cmd {
		for _, n := range m.Files {
			allowed[n] = true
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return "", err
	}
	defer d.Close()
	for {
		ents, err := d.ReadDir(256)
		for _, e := range ents {
			if !allowed[e.Name()] {
				return fmt.Sprintf("%q", e.Name()), nil
			}
			if !e.Type().IsRegular() {
				return fmt.Sprintf("%q (%s)", e.Name(), osfile.Kind(e.Type())), nil
			}
		}
		if err == io.EOF || len(ents) == 0 {
			return "", nil
		}
		if err != nil {
			return "", err
		}
	}
}

// readManifest reads a folder's manifest; ok is false when it is missing
// or not one we wrote (then only the fixed names count).
func readManifest(path string) (manifest, bool) {
	f, st, err := osfile.OpenRegular(path)
	if err != nil {
		return manifest{}, false
	}
	defer f.Close()
	if st.Size() > maxManifestBytes {
		return manifest{}, false
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxManifestBytes))
	if err != nil {
		return manifest{}, false
	}
	var m manifest
	if strictjson.Unmarshal(raw, &m) != nil {
		return manifest{}, false
	}
	for _, n := range m.Files {
		if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\\\x00") {
			return manifest{}, false
		}
	}
	return m, m.Version == 1
}

// manifestJSON is the manifest of a folder holding files, written by cmd.
func manifestJSON(cmd string, files []string) []byte { return modelManifestJSON(cmd, files, nil) }

// modelManifestJSON is the manifest of a model folder.
func modelManifestJSON(cmd string, files []string, m *modelInfo) []byte {
	fs := append([]string(nil), files...)
	sort.Strings(fs)
	b, _ := json.MarshalIndent(manifest{Version: 1, Command: cmd, Files: fs, Model: m}, "", "  ")
	return append(b, '\n')
}

func quoteAll(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return q
}

// begin creates the temporary file or folder.
func (o *output) begin() error {
	if o.model {
		return nil
	}
	dir := filepath.Dir(o.path)
	if o.folder {
		tmp, err := os.MkdirTemp(dir, osfile.TempPattern(o.path))
		if err == nil {
			err = os.Chmod(tmp, 0o755) // MkdirTemp makes it 0700
			if err != nil {
				os.Remove(tmp)
			}
		}
		if err != nil {
			return fmt.Errorf("lowrank: %s: cannot create %s: %w", o.path, o.what, unwrapPathErr(err))
		}
		o.tmp = tmp
		return nil
	}
	f, err := os.CreateTemp(dir, osfile.TempPattern(o.path))
	if err == nil {
		if err = f.Chmod(0o644); err != nil { // CreateTemp makes it 0600
			f.Close()
			os.Remove(f.Name())
		}
	}
	if err != nil {
		return fmt.Errorf("lowrank: %s: cannot create %s: %w", o.path, o.what, unwrapPathErr(err))
	}
	o.tmp, o.file = f.Name(), f
	return nil
}

// writer returns a safetensors writer into the temporary file of a file
// output; errors name the output's path.
func (o *output) writer(reserve int) (*safetensors.Writer, error) {
	return safetensors.NewWriter(o.file, o.path, safetensors.WriterOptions{HeaderReserve: reserve})
}

// create creates the file name inside a folder output; errors name it by
// its final path.
func (o *output) create(name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(o.tmp, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lowrank: %s: cannot create %s: %w", filepath.Join(o.path, name), name, unwrapPathErr(err))
	}
	return f, nil
}

// writeFile writes data to name inside a folder output and syncs it.
func (o *output) writeFile(name string, data []byte) error {
	f, err := o.create(name)
	if err != nil {
		return err
	}
	return writeSynced(f, filepath.Join(o.path, name), data)
}

// writeAll writes data as the whole content of a file output.
func (o *output) writeAll(data []byte) error {
	err := writeSynced(o.file, o.path, data)
	o.file = nil
	return err
}

// writeSynced writes data to f, syncs and closes it.
func writeSynced(f *os.File, name string, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("lowrank: %s: writing: %w", name, unwrapPathErr(err))
	}
	return nil
}

// abort removes the temporary (only ours: a file we created, or a folder
// we created and filled).
func (o *output) abort() {
	if o.done || o.tmp == "" {
		return
	}
	o.done = true
	if o.file != nil {
		o.file.Close()
	}
	os.RemoveAll(o.tmp)
}

// exchangeDirs swaps two folders atomically (a variable so that tests can
// take the fallback).
var exchangeDirs = exchange

// commit moves the finished output into place; for a folder it first
// writes the manifest. The temporary's content was synced when written;
// the folder holding the output is synced after the rename.
func (o *output) commit() error {
	if o.done {
		return fmt.Errorf("lowrank: %s: already committed or aborted", o.path)
	}
	if o.file != nil { // not closed by a writer: nothing more to write
		o.file.Close()
		o.file = nil
	}
	if o.folder {
		names := make([]string, 0, len(o.owned))
		for _, n := range o.owned {
			if _, err := os.Lstat(filepath.Join(o.tmp, n)); err == nil {
				names = append(names, n)
			}
		}
		if err := o.writeFile(manifestName, manifestJSON(o.cmd, append(names, manifestName))); err != nil {
			o.abort()
			return err
		}
		osfile.SyncDir(o.tmp)
	}
	// What is at the path now must still be replaceable.
	if err := o.checkExisting(); err != nil {
		o.abort()
		return err
	}
	var err error
	if o.folder {
		err = o.commitFolder()
	} else {
		err = o.commitFile()
	}
	if err != nil {
		o.abort()
		return err
	}
	o.done = true
	osfile.SyncDir(filepath.Dir(o.path))
	return nil
}

func (o *output) commitFile() error {
	if o.set.force {
		if err := os.Rename(o.tmp, o.path); err != nil {
			return fmt.Errorf("lowrank: %s: cannot rename the finished %s into place: %w", o.path, strings.TrimPrefix(o.what, "the "), unwrapPathErr(err))
		}
		return nil
	}
	err := os.Link(o.tmp, o.path)
	switch {
	case err == nil:
		os.Remove(o.tmp)
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("lowrank: %s: %w; expected a new file (use --force to overwrite)", o.path, safetensors.ErrExists)
	}
	// No hard links here (some file systems): check, then rename.
	if _, serr := os.Lstat(o.path); serr == nil {
		return fmt.Errorf("lowrank: %s: %w; expected a new file (use --force to overwrite)", o.path, safetensors.ErrExists)
	}
	if err := os.Rename(o.tmp, o.path); err != nil {
		return fmt.Errorf("lowrank: %s: cannot rename the finished %s into place: %w", o.path, strings.TrimPrefix(o.what, "the "), unwrapPathErr(err))
	}
	return nil
}

// commitFolder renames the folder into place. An existing folder (checked
// to hold only our files) is replaced as atomically as the system allows:
// on Linux one renameat2(RENAME_EXCHANGE) swaps the new folder and the old
// one, so the path never lacks a complete folder; elsewhere the old one is
// renamed aside and the new one renamed in (a crash between the two leaves
// the old folder beside the path as .NAME.tmp-*.old). The old folder is
// then emptied of the names it may hold and removed; anything else found
// in it (put there during the run) is kept, and the command fails naming
// where.
func (o *output) commitFolder() error {
	if _, err := os.Lstat(o.path); err != nil {
		if err := os.Rename(o.tmp, o.path); err != nil {
			return fmt.Errorf("lowrank: %s: cannot rename the finished folder into place: %w", o.path, unwrapPathErr(err))
		}
		return nil
	}
	var old string
	if exchangeDirs(o.tmp, o.path) == nil {
		old = o.tmp
	} else {
		old = o.tmp + ".old"
		if err := os.Rename(o.path, old); err != nil {
			return fmt.Errorf("lowrank: %s: cannot move the existing folder aside: %w", o.path, unwrapPathErr(err))
		}
		if err := os.Rename(o.tmp, o.path); err != nil {
			os.Rename(old, o.path)
			return fmt.Errorf("lowrank: %s: cannot rename the finished folder into place: %w", o.path, unwrapPathErr(err))
		}
	}
	o.done = true
	return o.removeOld(old)
}

// removeOld removes a replaced folder: its files of the allowed names one
// by one, then the folder if that emptied it.
func (o *output) removeOld(old string) error {
	allowed := append([]string(nil), o.owned...)
	if m, ok := readManifest(filepath.Join(old, manifestName)); ok && m.Command == o.cmd {
		allowed = append(allowed, m.Files...)
	}
	for _, n := range allowed {
		p := filepath.Join(old, n)
		if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() {
			os.Remove(p)
		}
	}
	if err := os.Remove(old); err != nil {
		return fmt.Errorf("lowrank: %s: the output is in place, but the folder it replaced, now %s, held files lowrank did not write (added during the run?); they were kept there", o.path, old)
	}
	return nil
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
