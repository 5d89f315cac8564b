package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/lowrank-go/lowrank/internal/osfile"
	"github.com/lowrank-go/lowrank/internal/strictjson"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// A folder output is built in parts. Each process (one, or N with --shard
// I/N) writes into the output folder OUT, which until 'lowrank join'
// (run by the command itself when it is the only part) holds only:
//
//	OUT/.lowrank-plan.json                 the layout: every shard's file name and input tensors,
//	                                       the input's identity and the flags (the same bytes from every part)
//	OUT/.lowrank-part-0000I-of-0000N/      part I's folder:
//	    manifest.json                      what it finished: each piece's size, SHA-256, tensors and
//	                                       report rows; "complete" once the part is done
//	    model-00002-of-00005.safetensors   a piece: the part's tensors of that shard, a complete
//	                                       safetensors file (the whole shard when no other part has
//	                                       tensors of it)
//	    .model-00003-of-00005.safetensors.tmp-*   the piece being written
//	    files/config.json …                part 0: the input folder's other files, copied
//	    lock                               held (flock) while a process works on the part
//
// Pieces are renamed into the part's folder only when complete, then
// recorded in the manifest (written to a temporary and renamed), so a part
// killed at any point (SIGKILL, a power cut) leaves finished pieces that
// --resume can check (size and SHA-256) and reuse. join checks every part,
// then builds the final folder beside OUT and exchanges the two: shards
// whose tensors lie in one part are hard links of the piece (a copy where
// links are not possible), the others are written from their pieces; the
// result is byte for byte what one process writes.

const (
	planName     = ".lowrank-plan.json"
	partPrefix   = ".lowrank-part-"
	partManifest = "manifest.json"
	partFiles    = "files"
	partLock     = "lock"
	// maxPlanBytes bounds the plan and the manifests read back.
	maxPlanBytes = 1 << 30
)

// partDirName is the name of part p of n's folder.
func partDirName(p, n int) string { return fmt.Sprintf("%s%05d-of-%05d", partPrefix, p, n) }

var partDirRE = regexp.MustCompile(`^\.lowrank-part-(\d{5,})-of-(\d{5,})$`)

// parsePartDir returns p and n of a part folder's name.
func parsePartDir(name string) (p, n int, ok bool) {
	m := partDirRE.FindStringSubmatch(name)
	if m == nil {
		return 0, 0, false
	}
	p, _ = strconv.Atoi(m[1])
	n, _ = strconv.Atoi(m[2])
	return p, n, n >= 1 && p < n
}

// isPartial reports whether name is an entry of an unfinished folder
// output.
func isPartial(name string) bool {
	if name == planName || strings.HasPrefix(name, planName+".tmp-") || strings.HasPrefix(name, "."+planName+".tmp-") {
		return true
	}
	_, _, ok := parsePartDir(name)
	return ok
}

// fileSum identifies one input file: its size and SHA-256s. For weight
// files (large), Head is the hash of the header and Ends that of the
// first and last MiB of the data; for others (small), Head is the hash of
// the whole file.
type fileSum struct {
	Role string `json:"role"`
	Name string `json:"name"`
	Size int64  `json:"size"`
	Head string `json:"sha256"`
	Ends string `json:"ends_sha256,omitempty"`
}

// outPlan is the JSON in OUT/.lowrank-plan.json.
type outPlan struct {
	Version int       `json:"version"`
	Command string    `json:"command"`
	Input   []fileSum `json:"input"`
	Flags   string    `json:"flags"`
	Prefix  string    `json:"prefix"`
	Sharded bool      `json:"sharded"`
	Shards  []struct {
		Name    string   `json:"name"`
		Tensors []string `json:"tensors"`
	} `json:"shards"`
	Other   []fileSum `json:"other_files"`
	Skipped []string  `json:"skipped,omitempty"`
	// Policy is factorize's rank policy, for join's report.
	Policy string `json:"policy,omitempty"`
	// Budget lists the tensors whose SVD method the memory budget
	// changed ("NAME: randomized", with the sketch cap for --energy and
	// --tol): a choice that depends on the machine's memory when
	// --max-memory is not given, which every part must share.
	Budget []string `json:"budget,omitempty"`
}

// piece is one finished piece in a part's manifest.
type piece struct {
	Shard  int      `json:"shard"` // from 0
	File   string   `json:"file"`
	Size   int64    `json:"size"`
	SHA256 string   `json:"sha256"`
	Inputs []string `json:"inputs"` // input tensors, in order
	Rows   []row    `json:"rows"`
	Listed []bool   `json:"listed"`
}

// partMan is the JSON in a part's manifest.json.
type partMan struct {
	Version  int       `json:"version"`
	Part     int       `json:"part"`
	Parts    int       `json:"parts"`
	Plan     string    `json:"plan_sha256"`
	From     int       `json:"from"` // positions [From, To) of the layout
	To       int       `json:"to"`
	Pieces   []piece   `json:"pieces"`
	Files    []fileSum `json:"files,omitempty"` // part 0: the other files copied
	Complete bool      `json:"complete"`
}

// folderJob is a command's folder output, for runFolder.
type folderJob struct {
	cmd    string // "factorize", "merge", "unmerge", "densify"
	src    *model.Checkpoint
	extra  []string // other input files of the identity (adapter, calibration)
	flags  string
	out    string
	fs     *folderSettings
	s      *settings
	items  []planItem
	prefix string
	// compute computes input item i; cost is its memory (nil: none).
	// A job may give prepare instead: the item in two stages, its
	// tensor read ahead while the items before it compute
	// (pipelineAhead).
	compute func(i int) (outcome, error)
	prepare func(i int) (func() (outcome, error), error)
	light   func(i int) bool // with prepare: the items that take no place in the window
	ahead   int              // with prepare: how many items are read ahead
	cost    func(i int) int64
	// piece starts the writer of one piece of the shard whose input
	// tensors are shard (model.Writer for factorize); outcomes are
	// written through it.
	piece func(w *safetensors.Writer, shard []string) pieceWriter
	// policy is factorize's rank policy (the report's, join's too).
	policy string
	// budget is the plan's Budget.
	budget []string
}

// pieceWriter finishes a piece: writes its metadata and closes it.
type pieceWriter interface {
	Close() error
	Abort() error
}

// plainPiece is the pieceWriter of commands that write the same metadata
// into every shard (merge).
type plainPiece struct {
	w  *safetensors.Writer
	md map[string]string
}

func (p plainPiece) Close() error { p.w.SetMetadata(p.md); return p.w.Close() }
func (p plainPiece) Abort() error { return p.w.Abort() }

// identity returns the fileSums of the job's inputs.
func (j *folderJob) identity() ([]fileSum, []fileSum, []string, error) {
	var in []fileSum
	if ix := j.src.Index(); ix != nil {
		s, err := sumWhole("index", ix.Path)
		if err != nil {
			return nil, nil, nil, err
		}
		in = append(in, s)
	}
	for _, f := range j.src.Files() {
		s, err := sumWeights("model", f.Path(), f.HeaderSize())
		if err != nil {
			return nil, nil, nil, err
		}
		in = append(in, s)
	}
	for _, p := range j.extra {
		if p == "" {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("lowrank: %w", err)
		}
		if st.IsDir() { // an adapter folder
			ents, err := os.ReadDir(p)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("lowrank: %w", err)
			}
			for _, e := range ents {
				if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
					s, err := sumSample("adapter", filepath.Join(p, e.Name()))
					if err != nil {
						return nil, nil, nil, err
					}
					in = append(in, s)
				}
			}
			continue
		}
		s, err := sumSample("input", p)
		if err != nil {
			return nil, nil, nil, err
		}
		in = append(in, s)
	}
	others, skipped, err := j.src.OtherFiles()
	if err != nil {
		return nil, nil, nil, err
	}
	var other []fileSum
	for i, o := range others {
		if err := tick(i); err != nil {
			return nil, nil, nil, err
		}
		s, err := sumWhole("other", o.Path)
		if err != nil {
			return nil, nil, nil, err
		}
		s.Name = o.Name
		other = append(other, s)
	}
	return in, other, skipped, nil
}

// sumWhole hashes the whole file at path.
func sumWhole(role, path string) (fileSum, error) {
	f, st, err := osfile.OpenRegular(path)
	if err != nil {
		return fileSum{}, fmt.Errorf("lowrank: %s: %w", path, unwrapPathErr(err))
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fileSum{}, fmt.Errorf("lowrank: %s: reading: %w", path, unwrapPathErr(err))
	}
	return fileSum{Role: role, Name: filepath.Base(path), Size: st.Size(), Head: hex.EncodeToString(h.Sum(nil))}, nil
}

// sumWeights hashes a safetensors file's header (its first 8+n bytes) and
// the first and last MiB of its data.
func sumWeights(role, path string, headerLen int64) (fileSum, error) {
	f, st, err := osfile.OpenRegular(path)
	if err != nil {
		return fileSum{}, fmt.Errorf("lowrank: %s: %w", path, unwrapPathErr(err))
	}
	defer f.Close()
	head := sha256.New()
	if _, err := io.Copy(head, io.NewSectionReader(f, 0, 8+headerLen)); err != nil {
		return fileSum{}, fmt.Errorf("lowrank: %s: reading: %w", path, unwrapPathErr(err))
	}
	ends, err := hashEnds(f, 8+headerLen, st.Size())
	if err != nil {
		return fileSum{}, fmt.Errorf("lowrank: %s: reading: %w", path, unwrapPathErr(err))
	}
	return fileSum{Role: role, Name: filepath.Base(path), Size: st.Size(), Head: hex.EncodeToString(head.Sum(nil)), Ends: ends}, nil
}

// sumSample hashes the first and last MiB of a file of any kind.
func sumSample(role, path string) (fileSum, error) {
	f, st, err := osfile.OpenRegular(path)
	if err != nil {
		return fileSum{}, fmt.Errorf("lowrank: %s: %w", path, unwrapPathErr(err))
	}
	defer f.Close()
	ends, err := hashEnds(f, 0, st.Size())
	if err != nil {
		return fileSum{}, fmt.Errorf("lowrank: %s: reading: %w", path, unwrapPathErr(err))
	}
	return fileSum{Role: role, Name: filepath.Base(path), Size: st.Size(), Head: ends}, nil
}

// hashEnds hashes the first and last MiB of [from, size) of r.
func hashEnds(r io.ReaderAt, from, size int64) (string, error) {
	const mib = 1 << 20
	h := sha256.New()
	n := size - from
	if _, err := io.Copy(h, io.NewSectionReader(r, from, min(n, mib))); err != nil {
		return "", err
	}
	if n > mib {
		start := max(from+mib, size-mib)
		if _, err := io.Copy(h, io.NewSectionReader(r, start, size-start)); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashFile returns the size and SHA-256 of the file at path.
func hashFile(path string) (int64, string, error) {
	f, _, err := osfile.OpenRegular(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// marshalPlan returns the plan's bytes (the same for every part) and
// their SHA-256.
func marshalPlan(p *outPlan) ([]byte, string) {
	b, _ := json.MarshalIndent(p, "", " ")
	b = append(b, '\n')
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// readJSONFile reads a JSON file of ours strictly into v.
func readJSONFile(path string, v any) error {
	b, err := readRegular(path, maxPlanBytes)
	if err != nil {
		return err
	}
	return strictjson.Unmarshal(b, v)
}

// readRegular reads the regular file at path, of at most max bytes; a
// FIFO, device or folder is refused without waiting on it.
func readRegular(path string, max int64) ([]byte, error) {
	f, st, err := osfile.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() > max {
		return nil, fmt.Errorf("%d bytes; expected at most %d", st.Size(), max)
	}
	return io.ReadAll(io.LimitReader(f, max+1))
}

// writeFileAtomic writes data to path through a temporary in its folder,
// synced and renamed over path.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), osfile.TempPattern(path))
	if err != nil {
		return fmt.Errorf("lowrank: %s: cannot create: %w", path, unwrapPathErr(err))
	}
	tmp := f.Name()
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("lowrank: %s: %w", path, unwrapPathErr(err))
	}
	if err := writeSynced(f, path, data); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lowrank: %s: cannot rename into place: %w", path, unwrapPathErr(err))
	}
	osfile.SyncDir(filepath.Dir(path))
	return nil
}

// folderState says what an existing output folder holds.
type folderState struct {
	exists   bool
	final    []string // files of a previous finished output (its manifest's)
	partial  []string // entries of an unfinished run
	previous string   // the command of the previous output's manifest
}

// modelFolderCommands are the commands whose folder outputs are model
// folders (which --force may replace with another).
var modelFolderCommands = map[string]bool{"factorize": true, "merge": true, "unmerge": true, "densify": true}

// inspectFolder classifies the entries of the folder output path: a
// previous model folder written by lowrank (its manifest's files), the
// entries of an unfinished run, and nothing else; anything else is an
// error naming it (--force never replaces what lowrank did not write).
func inspectFolder(path, cmd string) (folderState, error) {
	var st folderState
	fi, err := os.Lstat(path)
	if err != nil {
		return st, nil
	}
	if !fi.IsDir() {
		return st, fmt.Errorf("lowrank: %s: exists and is %s; expected a new folder name or a model folder written by a previous lowrank %s", path, osfile.Kind(fi.Mode()), cmd)
	}
	st.exists = true
	listed := map[string]bool{}
	if m, ok := readManifest(filepath.Join(path, manifestName)); ok && modelFolderCommands[m.Command] {
		for _, n := range m.Files {
			listed[n] = true
		}
		st.previous = m.Command
	} else if ok && m.Command != "" {
		return st, fmt.Errorf("lowrank: %s: is the output of lowrank %s, not a model folder; expected a new folder, an unfinished run of the same command (--resume) or a model folder written by lowrank (--force replaces only that: move it away or choose another -o)", path, m.Command)
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return st, fmt.Errorf("lowrank: %s: cannot list the existing folder: %w", path, unwrapPathErr(err))
	}
	for _, e := range ents {
		n := e.Name()
		switch {
		case isPartial(n):
			st.partial = append(st.partial, n)
		case listed[n] && e.Type().IsRegular():
			st.final = append(st.final, n)
		default:
			what := strconv.Quote(n)
			if !e.Type().IsRegular() {
				what += " (" + osfile.Kind(e.Type()) + ")"
			}
			return st, fmt.Errorf("lowrank: %s: holds %s, which lowrank %s does not write; expected a new folder, an unfinished run of the same command (--resume) or a model folder written by lowrank (--force replaces only that: move it away or choose another -o)", path, what, cmd)
		}
	}
	return st, nil
}

// errFinished says that --resume found the output folder finished by a
// run of the same command: the command succeeds with nothing to do (main
// exits 0; the note is printed by runFolder).
var errFinished = errors.New("lowrank: the output folder is finished")

// partRun is one process's part of a folder output.
type partRun struct {
	job    *folderJob
	lay    *layout
	names  []string // the shards' file names
	plan   *outPlan
	sum    string // the plan's SHA-256
	dir    string // the part's folder
	man    partMan
	reused map[int]bool // shards whose piece was reused
	unlock func()
	// unlockOut releases the lock on the output folder (lockFolder), held
	// from prepare to the end of the run, join included.
	unlockOut func()
	// created: what this run made and removes when it fails without
	// --resume.
	createdOut, createdDir bool

	// The piece being written.
	cur    int
	curF   string // its temporary file
	curW   *safetensors.Writer
	curPW  pieceWriter
	curIn  []string
	curRow []row
}

// runFolder runs a folder output: the layout, this process's part of the
// work, and (when it is the only part) the join. It returns the report
// rows of the work done (all of them after a join).
func runFolder(j *folderJob, lay *layout, stderr io.Writer) ([]row, error) {
	rows, err := runFolderPart(j, lay, stderr)
	if errors.Is(err, errInterrupted) && j.fs.resume {
		// The finished pieces stay: "no output was written" would say
		// otherwise.
		return nil, errInterruptedResumable
	}
	return rows, err
}

// errInterruptedResumable is errInterrupted for a run with --resume, which
// keeps the shard pieces it finished.
var errInterruptedResumable = fmt.Errorf("%w; the finished shard pieces are kept: run the same command with --resume to continue", errors.New("lowrank: interrupted"))

// runFolderPart is runFolder without the message for --resume.
func runFolderPart(j *folderJob, lay *layout, stderr io.Writer) ([]row, error) {
	fsx := j.fs
	if lay == nil {
		lay = planLayout(j.items, fsx.maxShard)
	}
	sharded := j.src.Sharded() || fsx.maxShardGiven || len(lay.shards) > 1
	r := &partRun{job: j, lay: lay, names: lay.shardNames(j.prefix, sharded), reused: map[int]bool{}, cur: -1}
	in, other, skipped, err := j.identity()
	if err != nil {
		return nil, err
	}
	r.plan = &outPlan{Version: 1, Command: j.cmd, Input: in, Flags: j.flags, Prefix: j.prefix, Sharded: sharded, Other: other, Skipped: skipped, Policy: j.policy, Budget: j.budget}
	for s, se := range lay.shards {
		sh := struct {
			Name    string   `json:"name"`
			Tensors []string `json:"tensors"`
		}{Name: r.names[s]}
		for _, i := range lay.order[se[0]:se[1]] {
			sh.Tensors = append(sh.Tensors, j.items[i].name)
		}
		r.plan.Shards = append(r.plan.Shards, sh)
	}
	planBytes, sum := marshalPlan(r.plan)
	r.sum = sum
	lo, hi := lay.split(j.items, fsx.part, fsx.parts)
	r.man = partMan{Version: 1, Part: fsx.part, Parts: fsx.parts, Plan: sum, From: lo, To: hi}
	if err := r.prepare(planBytes); err != nil {
		if err == errFinished {
			fmt.Fprintf(stderr, "lowrank: %s: already complete (a finished run of this command: the same input, flags and layout); nothing to do, no table or report written\n", esc(j.out))
		}
		return nil, err
	}
	ok := false
	defer func() {
		r.abortPiece()
		if !ok {
			r.cleanup()
		}
		if r.unlock != nil {
			r.unlock()
		}
		r.unlockOut()
	}()
	if fsx.distributed() && !j.s.quiet {
		fmt.Fprintf(stderr, "lowrank: part %d of %d (%s): tensors %d–%d of %d, %d shard files in all\n", fsx.part, fsx.parts, fsx.partFrom, lo, hi, len(lay.order), len(lay.shards))
	}
	if len(r.reused) > 0 && !j.s.quiet {
		fmt.Fprintf(stderr, "lowrank: --resume: %d finished shard pieces of part %d of %d reused (size and SHA-256 checked)\n", len(r.reused), fsx.part, fsx.parts)
	}
	if err := r.copyOthers(); err != nil {
		return nil, err
	}
	var todo []int // positions to compute
	for k := lo; k < hi; k++ {
		if !r.reused[lay.shard[k]] {
			todo = append(todo, k)
		}
	}
	var total, reused int64
	for k := lo; k < hi; k++ {
		b := j.items[lay.order[k]].bound
		total += b
		if r.reused[lay.shard[k]] {
			reused += b
		}
	}
	prog := newProgress(stderr, j.s.quiet, total, j.cmd)
	if reused > 0 {
		prog.step("", reused)
	}
	var cost func(int) int64
	if j.cost != nil {
		cost = func(t int) int64 { return j.cost(lay.order[todo[t]]) }
	}
	prepare, ahead := j.prepare, j.ahead
	if prepare == nil {
		prepare, ahead = func(i int) (func() (outcome, error), error) {
			return func() (outcome, error) { return j.compute(i) }, nil
		}, 0
	}
	var light func(int) bool
	if j.light != nil {
		light = func(t int) bool { return j.light(lay.order[todo[t]]) }
	}
	err = pipelineAhead(len(todo), j.s.jobs, ahead, j.s.mem, cost, light, func(t int) (func() (outcome, error), error) {
		return prepare(lay.order[todo[t]])
	}, func(t int, o outcome) error {
		k := todo[t]
		if err := r.write(k, o); err != nil {
			return err
		}
		prog.step(o.row.Name, j.items[lay.order[k]].bound)
		return nil
	})
	prog.done()
	if err != nil {
		return nil, err
	}
	if err := r.finishPiece(); err != nil {
		return nil, err
	}
	r.man.Complete = true
	if err := r.saveManifest(); err != nil {
		return nil, err
	}
	ok = true
	if r.unlock != nil {
		r.unlock()
		r.unlock = nil
	}
	if fsx.distributed() {
		return r.rows(), nil
	}
	return joinFolder(j.out, joinOptions{cmd: j.cmd, force: j.s.force, stderr: stderr, quiet: j.s.quiet})
}

// rows returns the report rows of the part's pieces, in order.
func (r *partRun) rows() []row {
	var out []row
	for _, p := range r.man.Pieces {
		for i, rw := range p.Rows {
			rw.listed = p.Listed[i]
			out = append(out, rw)
		}
	}
	return out
}

// prepare checks and creates the output folder and the part's folder, and
// loads what a previous run of the part finished (--resume).
func (r *partRun) prepare(planBytes []byte) (err error) {
	j := r.job
	// Hold the folder first (creating it when there is none), then look at
	// what it holds: another run on it fails here, before touching it.
	if fi, lerr := os.Lstat(j.out); lerr != nil {
		if err := os.Mkdir(j.out, 0o755); err == nil {
			r.createdOut = true
		} else if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("lowrank: %s: cannot create the output folder: %w", j.out, unwrapPathErr(err))
		}
	} else if !fi.IsDir() {
		_, err := inspectFolder(j.out, j.cmd) // names what is in the way
		return err
	}
	if r.unlockOut, err = lockFolder(j.out, !j.fs.distributed()); err != nil {
		if r.createdOut {
			os.Remove(j.out)
			r.createdOut = false
		}
		return err
	}
	defer func() {
		if err != nil {
			if r.unlock != nil {
				r.unlock()
				r.unlock = nil
			}
			if r.createdOut {
				os.Remove(j.out) // only when empty
			}
			r.unlockOut()
			r.unlockOut = nil
		}
	}()
	st, err := inspectFolder(j.out, j.cmd)
	if err != nil {
		return err
	}

	if len(st.final) > 0 && !j.s.force {
		// --resume of the same command, finished: every file it wrote is
		// there (one missing: the error below, --force redoes it).
		if m, ok := readManifest(filepath.Join(j.out, manifestName)); ok && j.fs.resume && m.Command == j.cmd && m.Model != nil && m.Model.Plan == r.sum && len(st.final) == len(m.Files) {
			return errFinished
		}
		return fmt.Errorf("lowrank: %s: %w; expected a new folder (use --force to replace a model folder written by a previous lowrank %s)", j.out, safetensors.ErrExists, st.previous)
	}
	// An unfinished run of one process (or of parts): --resume continues
	// it, --force (alone) starts over.
	if !j.fs.distributed() && len(st.partial) > 0 && !j.fs.resume {
		if !j.s.force {
			return fmt.Errorf("lowrank: %s: holds an unfinished run (%s); expected --resume to continue it, or --force to start over", j.out, strings.Join(st.partial, ", "))
		}
		for _, n := range st.partial {
			if err := removePartial(filepath.Join(j.out, n)); err != nil {
				return err
			}
		}
		st.partial = nil
	}
	// The plan: written by the first part, the same bytes from every other.
	pp := filepath.Join(j.out, planName)
	if old, err := readRegular(pp, maxPlanBytes); err == nil {
		if string(old) != string(planBytes) {
			if err := budgetDiffers(j.out, old, r.plan); err != nil {
				return err
			}
			return fmt.Errorf("lowrank: %s: holds a run of another input, other flags or another lowrank (%s differs from this command's); expected the same command in every part (remove its .lowrank-* entries, or use --force without --shard, to start over)", j.out, planName)
		}
	} else if err := writeFileAtomic(pp, planBytes); err != nil {
		return err
	}
	// Parts of another split in the folder.
	for _, n := range st.partial {
		if p, nn, ok := parsePartDir(n); ok && nn != j.fs.parts {
			return fmt.Errorf("lowrank: %s: holds part %d of %d of a run in %d parts (%s); expected every part of one run to use the same N (this is part %d of %d)", j.out, p, nn, nn, n, j.fs.part, j.fs.parts)
		}
	}
	r.dir = filepath.Join(j.out, partDirName(j.fs.part, j.fs.parts))
	if err := os.Mkdir(r.dir, 0o755); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("lowrank: %s: cannot create the part's folder: %w", r.dir, unwrapPathErr(err))
		}
	} else {
		r.createdDir = true
	}
	if r.unlock, err = lockPart(filepath.Join(r.dir, partLock)); err != nil {
		return err
	}
	if r.createdDir {
		return r.saveManifest()
	}
	return r.loadPrevious()
}

// budgetDiffers returns an error when the plan old (another part's, or
// an interrupted run's) differs from p only in the methods the memory
// budget chose: the parts would mix outputs of different methods.
func budgetDiffers(out string, old []byte, p *outPlan) error {
	var o outPlan
	if strictjson.Unmarshal(old, &o) != nil {
		return nil
	}
	ob := o.Budget
	o.Budget = p.Budget
	a, _ := marshalPlan(&o)
	b, _ := marshalPlan(p)
	if string(a) != string(b) {
		return nil // other differences: the general message
	}
	show := func(b []string) string {
		if len(b) == 0 {
			return "none"
		}
		if len(b) > 3 {
			return strings.Join(b[:3], "; ") + fmt.Sprintf("; … (%d in all)", len(b))
		}
		return strings.Join(b, "; ")
	}
	return fmt.Errorf("lowrank: %s: this process's memory budget changes the SVD method of other tensors than the run's plan does (here: %s; the plan: %s), so its part would not match the others'; expected the same methods in every part: give every part the same --max-memory (the default depends on each machine's free memory), or --method exact or randomized", out, show(p.Budget), show(ob))
}

// loadPrevious reads the manifest a previous run of the part left: with
// --resume, its pieces that are intact are reused; without, the part is
// refused (--force redoes it).
func (r *partRun) loadPrevious() error {
	j := r.job
	var old partMan
	err := readJSONFile(filepath.Join(r.dir, partManifest), &old)
	if !j.fs.resume {
		if !j.s.force {
			what := "no manifest"
			if err == nil {
				what = fmt.Sprintf("%d pieces finished", len(old.Pieces))
				if old.Complete {
					what = "complete"
				}
			}
			return fmt.Errorf("lowrank: %s: part %d of %d was run before (%s); expected --resume to continue it, or --force to redo it", r.dir, j.fs.part, j.fs.parts, what)
		}
		return r.reset()
	}
	if err != nil || old.Plan != r.sum || old.Part != r.man.Part || old.Parts != r.man.Parts || old.From != r.man.From || old.To != r.man.To {
		return r.reset() // nothing reusable
	}
	for _, p := range old.Pieces {
		if p.Shard < 0 || p.Shard >= len(r.names) || p.File != r.names[p.Shard] || len(p.Rows) != len(p.Listed) {
			continue
		}
		size, sum, err := hashFile(filepath.Join(r.dir, p.File))
		if err != nil || size != p.Size || sum != p.SHA256 {
			continue
		}
		r.reused[p.Shard] = true
		r.man.Pieces = append(r.man.Pieces, p)
	}
	if r.man.Part == 0 {
		r.man.Files = old.Files
	}
	// Remove what is not reused: other pieces, temporaries.
	keep := map[string]bool{partManifest: true, partLock: true, partFiles: true}
	for _, p := range r.man.Pieces {
		keep[p.File] = true
	}
	ents, _ := os.ReadDir(r.dir)
	for _, e := range ents {
		if !keep[e.Name()] && e.Type().IsRegular() {
			os.Remove(filepath.Join(r.dir, e.Name()))
		}
	}
	return r.saveManifest()
}

// reset empties the part's folder of what a previous run left.
func (r *partRun) reset() error {
	ents, _ := os.ReadDir(r.dir)
	for _, e := range ents {
		switch {
		case e.Name() == partLock:
		case e.Name() == partFiles && e.IsDir():
			removeFilesDir(filepath.Join(r.dir, partFiles))
		case e.Type().IsRegular():
			os.Remove(filepath.Join(r.dir, e.Name()))
		}
	}
	return r.saveManifest()
}

// saveManifest writes the part's manifest atomically.
func (r *partRun) saveManifest() error {
	b, _ := json.MarshalIndent(r.man, "", " ")
	return writeFileAtomic(filepath.Join(r.dir, partManifest), append(b, '\n'))
}

// copyOthers copies the input folder's other files into part 0's folder
// (checked against the plan's hashes; reused when intact).
func (r *partRun) copyOthers() error {
	if r.man.Part != 0 || len(r.plan.Other) == 0 {
		return nil
	}
	have := map[string]fileSum{}
	for _, f := range r.man.Files {
		have[f.Name] = f
	}
	dst := filepath.Join(r.dir, partFiles)
	if err := os.Mkdir(dst, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("lowrank: %s: %w", dst, unwrapPathErr(err))
	}
	others, _, err := r.job.src.OtherFiles()
	if err != nil {
		return err
	}
	byName := map[string]model.OtherFile{}
	for _, o := range others {
		byName[o.Name] = o
	}
	var done []fileSum
	for _, want := range r.plan.Other {
		p := filepath.Join(dst, want.Name)
		if h, ok := have[want.Name]; ok && h == want {
			if size, sum, err := hashFile(p); err == nil && size == want.Size && sum == want.Head {
				done = append(done, want)
				continue
			}
		}
		o, ok := byName[want.Name]
		if !ok {
			return fmt.Errorf("lowrank: %s: %s disappeared from the model folder during the run", r.job.src.Path(), want.Name)
		}
		if err := copyFile(o.Path, p); err != nil {
			return err
		}
		if size, sum, err := hashFile(p); err != nil || size != want.Size || sum != want.Head {
			return fmt.Errorf("lowrank: %s: changed during the run (its copy does not match the hash taken when the run started); expected the input to stay as it is", o.Path)
		}
		done = append(done, want)
		r.man.Files = done
		if err := r.saveManifest(); err != nil {
			return err
		}
	}
	r.man.Files = done
	return r.saveManifest()
}

// copyFile copies src to dst (through a temporary, synced and renamed).
func copyFile(src, dst string) error {
	in, _, err := osfile.OpenRegular(src)
	if err != nil {
		return fmt.Errorf("lowrank: %s: %w", src, unwrapPathErr(err))
	}
	defer in.Close()
	f, err := os.CreateTemp(filepath.Dir(dst), osfile.TempPattern(dst))
	if err != nil {
		return fmt.Errorf("lowrank: %s: cannot create: %w", dst, unwrapPathErr(err))
	}
	tmp := f.Name()
	_, err = io.Copy(f, in)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lowrank: %s: copying to %s: %w", src, dst, unwrapPathErr(err))
	}
	return nil
}

// write writes the outcome of position k into its shard's piece.
func (r *partRun) write(k int, o outcome) error {
	s := r.lay.shard[k]
	if s != r.cur {
		if err := r.finishPiece(); err != nil {
			return err
		}
		if err := r.startPiece(s); err != nil {
			return err
		}
	}
	if err := o.write(r.curW); err != nil {
		return err
	}
	r.curIn = append(r.curIn, r.job.items[r.lay.order[k]].name)
	r.curRow = append(r.curRow, o.row)
	return nil
}

// startPiece opens the piece of shard s.
func (r *partRun) startPiece(s int) error {
	final := filepath.Join(r.job.out, r.names[s])
	f, err := os.CreateTemp(r.dir, osfile.TempPattern(r.names[s]))
	if err != nil {
		return fmt.Errorf("lowrank: %s: cannot create: %w", final, unwrapPathErr(err))
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("lowrank: %s: %w", final, unwrapPathErr(err))
	}
	w, err := safetensors.NewWriter(f, final, safetensors.WriterOptions{HeaderReserve: 64 << 10})
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	r.cur, r.curF, r.curW, r.curPW, r.curIn, r.curRow = s, f.Name(), w, r.job.piece(w, r.plan.Shards[s].Tensors), nil, nil
	return nil
}

// finishPiece closes the piece being written, renames it into the part's
// folder and records it in the manifest.
func (r *partRun) finishPiece() error {
	if r.cur < 0 {
		return nil
	}
	s, tmp := r.cur, r.curF
	r.cur = -1
	if err := r.curPW.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	name := r.names[s]
	p := filepath.Join(r.dir, name)
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lowrank: %s: cannot rename the finished piece into place: %w", p, unwrapPathErr(err))
	}
	osfile.SyncDir(r.dir)
	size, sum, err := hashFile(p)
	if err != nil {
		return fmt.Errorf("lowrank: %s: reading back: %w", p, unwrapPathErr(err))
	}
	pc := piece{Shard: s, File: name, Size: size, SHA256: sum, Inputs: r.curIn, Rows: r.curRow}
	for _, rw := range r.curRow {
		pc.Listed = append(pc.Listed, rw.listed)
	}
	r.man.Pieces = append(r.man.Pieces, pc)
	sort.Slice(r.man.Pieces, func(a, b int) bool { return r.man.Pieces[a].Shard < r.man.Pieces[b].Shard })
	return r.saveManifest()
}

// abortPiece discards the piece being written.
func (r *partRun) abortPiece() {
	if r.cur < 0 {
		return
	}
	r.curPW.Abort()
	os.Remove(r.curF)
	r.cur = -1
}

// cleanup removes, after a failure without --resume, what the run made:
// the part's folder and, for a run of one process, the plan and the
// output folder when it created them. With --resume the finished pieces
// stay for the next run.
func (r *partRun) cleanup() {
	if r.job.fs.resume || r.dir == "" {
		return
	}
	if r.unlock != nil {
		r.unlock()
		r.unlock = nil
	}
	removePartial(r.dir)
	if r.job.fs.distributed() {
		return
	}
	os.Remove(filepath.Join(r.job.out, planName))
	if r.createdOut {
		os.Remove(r.job.out) // only when empty
	}
}

// removePartial removes an entry of an unfinished run: the plan, or a
// part's folder with only the names parts write (never recursively
// beyond them; a file put there by hand is kept, and so is the folder).
func removePartial(p string) error {
	st, err := os.Lstat(p)
	if err != nil {
		return nil
	}
	if !st.IsDir() {
		return os.Remove(p)
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return fmt.Errorf("lowrank: %s: %w", p, unwrapPathErr(err))
	}
	for _, e := range ents {
		n := filepath.Join(p, e.Name())
		switch {
		case e.Name() == partFiles && e.IsDir():
			removeFilesDir(n)
		case e.Type().IsRegular() && partEntry(e.Name()):
			os.Remove(n)
		}
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("lowrank: %s: the part's folder holds files lowrank did not write; they were kept: %w", p, unwrapPathErr(err))
	}
	return nil
}

// partEntry reports whether name is a file a part writes in its folder.
func partEntry(name string) bool {
	return name == partManifest || name == partLock || strings.HasSuffix(name, ".safetensors") ||
		strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

// removeFilesDir removes part 0's copies of the other files: regular
// files, then the folder.
func removeFilesDir(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}
