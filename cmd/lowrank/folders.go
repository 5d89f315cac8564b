package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// source is an input model: one safetensors file, or the shards of a model
// folder (a *model.Checkpoint). Tensors are read by name from the file
// that holds them.
type source interface {
	Path() string
	Tensors() []safetensors.TensorInfo
	Tensor(name string) (safetensors.TensorInfo, bool)
	Metadata() map[string]string
	Size() int64
	HeaderEstimate() int
	Section(name string) (*io.SectionReader, error)
	ReadRaw(name string) ([]byte, error)
	Float32s(name string) ([]float32, error)
	Float64s(name string) ([]float64, error)
	ReadFloat32s(name string, dst []float32) error
	ReadFloat64s(name string, dst []float64) error
	Scalar(name string) (float64, error)
	Close() error
}

var (
	_ source = (*safetensors.File)(nil)
	_ source = (*model.Checkpoint)(nil)
)

// openModel opens the model at path within the budget: a .safetensors
// file, a model folder (model.safetensors, or shards and their index;
// diffusers' diffusion_pytorch_model names too) or a folder's index file,
// read by model.OpenCheckpoint (the index strictly, against its shards).
// Every header and the index are charged to the budget.
func (b *budget) openModel(path string) (*model.Checkpoint, error) {
	c, err := model.OpenCheckpoint(path, model.CheckpointOptions{Context: cmdContext, Budget: b, OpenFile: b.open})
	if err != nil {
		if cmdContext.Err() != nil {
			return nil, errInterrupted
		}
		return nil, err
	}
	return c, nil
}

// isFolderModel reports whether path names a model folder or an index
// file (whose outputs are folders), rather than one .safetensors file.
func isFolderModel(path string) bool {
	st, err := os.Stat(path)
	return err == nil && (st.IsDir() || strings.HasSuffix(path, safetensors.IndexSuffix))
}

// defaultMaxShardSize is Hugging Face's default max_shard_size ("5GB").
const defaultMaxShardSize = "5GB"

// folderFlags are the flags of the commands that write model folders.
type folderFlags struct {
	fs           *flag.FlagSet
	maxShardSize *string
	shard        *string
	shards       *int
	resume       *bool
}

func addFolderFlags(fs *flag.FlagSet) *folderFlags {
	return &folderFlags{
		fs:           fs,
		maxShardSize: fs.String("max-shard-size", defaultMaxShardSize, "folder outputs: the largest shard `SIZE` (500MB, 2GiB, 5GB: the tensors' bytes, as Hugging Face counts them); given with a single-file input, the output is a sharded folder too"),
		shard:        fs.String("shard", "", "do part `I/N` of the work (I from 0 to N-1) into the output folder, for 'lowrank join' to finish; default: from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs, with --shards or LOWRANK_SHARDS) or SLURM_ARRAY_TASK_ID (Slurm job arrays)"),
		shards:       fs.Int("shards", 0, "the number of parts `N` when the part's index comes from JOB_COMPLETION_INDEX (default: LOWRANK_SHARDS)"),
		resume:       fs.Bool("resume", false, "folder outputs: continue an interrupted run of the same command, reusing every finished shard whose checksum matches; an interrupted --resume run keeps its finished shards; a run it already finished has nothing to do (exit 0)"),
	}
}

// folderSettings are the parsed folder flags.
type folderSettings struct {
	maxShard      int64
	maxShardGiven bool
	part, parts   int    // this process's part of the work, 0 of 1 by default
	partFrom      string // where part came from: "--shard", "JOB_COMPLETION_INDEX", …
	resume        bool
}

// settings parses the folder flags; env reads the environment (os.Getenv
// outside tests).
func (ff *folderFlags) settings(cmd string, env func(string) string) (*folderSettings, error) {
	set := map[string]bool{}
	ff.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fs := &folderSettings{part: 0, parts: 1, resume: *ff.resume, maxShardGiven: set["max-shard-size"]}
	n, err := parseSizeFlag("max-shard-size", *ff.maxShardSize)
	if err != nil || n < 1 {
		if err == nil {
			err = fmt.Errorf("--max-shard-size %q; expected a positive size such as 500MB, 2GiB or 5GB", *ff.maxShardSize)
		}
		return nil, usagef("%s: %v", cmd, err)
	}
	fs.maxShard = n
	if set["shards"] && *ff.shards < 1 {
		return nil, usagef("%s: --shards %d; expected the number of parts, at least 1", cmd, *ff.shards)
	}
	switch {
	case set["shard"]:
		if set["shards"] {
			return nil, usagef("%s: --shard %s and --shards %d; expected --shard I/N alone (--shards gives N when I comes from JOB_COMPLETION_INDEX)", cmd, *ff.shard, *ff.shards)
		}
		if fs.part, fs.parts, err = parseShard(*ff.shard); err != nil {
			return nil, usagef("%s: --shard %q: %v", cmd, *ff.shard, err)
		}
		fs.partFrom = "--shard"
	case env("JOB_COMPLETION_INDEX") != "":
		v := env("JOB_COMPLETION_INDEX")
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			return nil, usagef("%s: JOB_COMPLETION_INDEX=%q; expected a part index ≥ 0 (set by a Kubernetes Indexed Job)", cmd, v)
		}
		n, from := *ff.shards, "--shards"
		if !set["shards"] {
			s := env("LOWRANK_SHARDS")
			if s == "" {
				return nil, usagef("%s: JOB_COMPLETION_INDEX=%d is set but not the number of parts; expected --shards N or LOWRANK_SHARDS=N (the Job's completions)", cmd, i)
			}
			if n, err = strconv.Atoi(s); err != nil || n < 1 {
				return nil, usagef("%s: LOWRANK_SHARDS=%q; expected the number of parts, at least 1", cmd, s)
			}
			from = "LOWRANK_SHARDS"
		}
		if i >= n {
			return nil, usagef("%s: JOB_COMPLETION_INDEX=%d with %s %d; expected an index from 0 to %d", cmd, i, from, n, n-1)
		}
		fs.part, fs.parts, fs.partFrom = i, n, "JOB_COMPLETION_INDEX"
	case env("SLURM_ARRAY_TASK_ID") != "":
		if set["shards"] {
			return nil, usagef("%s: --shards with SLURM_ARRAY_TASK_ID; expected the array to give the parts (SLURM_ARRAY_TASK_COUNT)", cmd)
		}
		id, err1 := strconv.Atoi(env("SLURM_ARRAY_TASK_ID"))
		count, err2 := strconv.Atoi(env("SLURM_ARRAY_TASK_COUNT"))
		lo, err3 := strconv.Atoi(env("SLURM_ARRAY_TASK_MIN"))
		if err1 != nil || err2 != nil || err3 != nil || count < 1 {
			return nil, usagef("%s: SLURM_ARRAY_TASK_ID=%q, SLURM_ARRAY_TASK_COUNT=%q, SLURM_ARRAY_TASK_MIN=%q; expected the integers Slurm sets in a job array", cmd,
				env("SLURM_ARRAY_TASK_ID"), env("SLURM_ARRAY_TASK_COUNT"), env("SLURM_ARRAY_TASK_MIN"))
		}
		if hi, err := strconv.Atoi(env("SLURM_ARRAY_TASK_MAX")); err == nil && hi-lo+1 != count {
			return nil, usagef("%s: the Slurm array runs %d tasks from %d to %d; expected a contiguous array such as --array=0-%d (no step, no gaps)", cmd, count, lo, hi, count-1)
		}
		if id-lo < 0 || id-lo >= count {
			return nil, usagef("%s: SLURM_ARRAY_TASK_ID=%d is outside %d…%d; expected a contiguous array such as --array=0-%d", cmd, id, lo, lo+count-1, count-1)
		}
		fs.part, fs.parts, fs.partFrom = id-lo, count, "SLURM_ARRAY_TASK_ID"
	case set["shards"]:
		return nil, usagef("%s: --shards %d without JOB_COMPLETION_INDEX; expected --shard I/N", cmd, *ff.shards)
	}
	return fs, nil
}

// parseShard parses "I/N".
func parseShard(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	switch {
	case !ok || err1 != nil || err2 != nil:
		return 0, 0, errors.New("expected I/N, such as 0/4")
	case n < 1:
		return 0, 0, fmt.Errorf("N is %d; expected at least 1 part", n)
	case i < 0 || i >= n:
		return 0, 0, fmt.Errorf("I is %d; expected a part from 0 to %d", i, n-1)
	}
	return i, n, nil
}

// distributed reports whether this run is one part of several (or was
// asked to be a part, 0/1 included), so that 'lowrank join' finishes it.
func (fs *folderSettings) distributed() bool { return fs.partFrom != "" }

// parseSizeFlag parses a size as parseSize does, naming the flag.
func parseSizeFlag(name, s string) (int64, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("--%s %q; expected a size such as 500MB, 2GiB or 5GB", name, s)
	}
	return n, nil
}

// filesOf returns the safetensors files of an input.
func filesOf(src source) []*safetensors.File {
	if c, ok := src.(*model.Checkpoint); ok {
		return c.Files()
	}
	return []*safetensors.File{src.(*safetensors.File)}
}

// folderOut is a command's model folder output: the folder flags, and the
// flags that shape the output (for the plan every part must share).
type folderOut struct {
	fs    *folderSettings
	flags string
}

// fileOrFolder adds the command's output: a model folder (modelFolder) or
// a file.
func (s *outputSet) fileOrFolder(folder bool, path, cmd string) *output {
	if folder {
		return s.modelFolder(path, cmd)
	}
	return s.file(path, "the output")
}

// headerBytes returns the bytes of the headers of an input's files (with
// their 8-byte lengths).
func headerBytes(src source) int64 {
	var n int64
	for _, f := range filesOf(src) {
		n += f.HeaderSize() + 8
	}
	return n
}

var shardNameRE = regexp.MustCompile(`-\d{5,}-of-\d{5,}\.safetensors$`)

// shardsHint is a usage error's advice when the arguments are the shards
// of one folder (a shell glob such as model-*.safetensors): give the
// folder.
func shardsHint(args []string) string {
	if len(args) < 2 {
		return ""
	}
	dir := filepath.Dir(args[0])
	for _, a := range args {
		if filepath.Dir(a) != dir || !shardNameRE.MatchString(filepath.Base(a)) {
			return ""
		}
	}
	return fmt.Sprintf("; these look like the shards of one model: give the folder %q (or its index file) instead", dir)
}
