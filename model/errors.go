package model

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/lowrank-go/lowrank/safetensors"
)

// Sentinel errors. Every error this package returns starts with "lowrank: ",
// names the file (and the tensor or module) it is about, says what was
// expected, and wraps one of these, so that callers can test with
// errors.Is. Errors from reading a file's header or data wrap
// safetensors.ErrFormat or safetensors.ErrDType instead; errors from the
// computation wrap the lowrank package's sentinels (lowrank.ErrShape,
// lowrank.ErrNonFinite, …).
var (
	// ErrNotFound: a module, tensor or file the model or adapter does not
	// hold.
	ErrNotFound = errors.New("lowrank: not found")
	// ErrFormat: a file or folder that is not laid out as a factorized
	// model or an adapter should be (factor pairs whose shapes do not fit,
	// a dense tensor beside its own factors, adapter keys or an
	// adapter_config.json that are not PEFT's or kohya's).
	ErrFormat = errors.New("lowrank: malformed model or adapter")
	// ErrMetadata: the lowrank metadata of a file claims what its tensors
	// contradict (a shape, rank or dtype, a factorized tensor that is not
	// there), or is not lowrank's JSON.
	ErrMetadata = errors.New("lowrank: metadata disagrees with the file")
	// ErrUnsupported: an adapter feature this package does not apply
	// (DoRA, embedding LoRA, LoRA biases, pickled weights, a sharded
	// folder).
	ErrUnsupported = errors.New("lowrank: not supported")
	// ErrMismatch: an adapter that does not fit the base layer it is
	// applied to (shapes, fan_in_fan_out). Shape mismatches also wrap
	// lowrank.ErrShape.
	ErrMismatch = errors.New("lowrank: adapter does not fit the base")
	// ErrNeedBase: a kohya adapter opened without its base model, whose
	// module names its LoRA names are mapped to.
	ErrNeedBase = errors.New("lowrank: the adapter needs its base model")
	// ErrClosed: a model or adapter used after Close.
	ErrClosed = errors.New("lowrank: closed")
	// ErrMemory: opening would hold more memory than the budget allows
	// (Options.MaxMemory, AdapterOptions.MaxMemory or a Budget).
	ErrMemory = safetensors.ErrMemory
)

// modelError is an error of this package: its text is "lowrank: " + msg
// and it wraps its kinds (a sentinel, and the error it came from).
type modelError struct {
	kinds []error
	msg   string
}

func (e *modelError) Error() string   { return "lowrank: " + e.msg }
func (e *modelError) Unwrap() []error { return e.kinds }

// errorf returns an error of kind; its text is "lowrank: " and the format.
func errorf(kind error, format string, args ...any) error {
	return &modelError{kinds: []error{kind}, msg: fmt.Sprintf(format, args...)}
}

// fileErr is an error about a file: "lowrank: FILE: …".
func fileErr(kind error, file, format string, args ...any) error {
	return &modelError{kinds: []error{kind}, msg: file + ": " + fmt.Sprintf(format, args...)}
}

// tensorErr is an error about one tensor of a file: `lowrank: FILE: tensor
// "NAME": …`, the commands' form.
func tensorErr(kind error, file, tensor, format string, args ...any) error {
	return &modelError{kinds: []error{kind}, msg: file + ": tensor " + strconv.Quote(tensor) + ": " + fmt.Sprintf(format, args...)}
}

// wrap returns err (which starts with "lowrank: ") with context before
// its message, still wrapping it and kind.
func wrap(kind error, err error, format string, args ...any) error {
	kinds := []error{err}
	if kind != nil {
		kinds = append(kinds, kind)
	}
	return &modelError{kinds: kinds, msg: fmt.Sprintf(format, args...) + ": " + strip(err)}
}

// strip removes a leading "lowrank: " so that an error can be quoted
// inside another one.
func strip(err error) string { return strings.TrimPrefix(err.Error(), "lowrank: ") }

// ctxErr is the error for a cancelled context.
func ctxErr(ctx context.Context) error {
	return &modelError{kinds: []error{ctx.Err()}, msg: ctx.Err().Error()}
}

// tick checks ctx every 4096 iterations of a loop over tensors or keys.
func tick(ctx context.Context, i int) error {
	if i&4095 == 0 && ctx.Err() != nil {
		return ctxErr(ctx)
	}
	return nil
}

// quoteAll quotes every name.
func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strconv.Quote(n)
	}
	return out
}

// shapeString writes a shape as the commands do: "4×3", "scalar".
func shapeString(s []int) string {
	if s == nil {
		return ""
	}
	if len(s) == 0 {
		return "scalar"
	}
	p := make([]string, len(s))
	for i, d := range s {
		p[i] = strconv.Itoa(d)
	}
	return strings.Join(p, "×")
}

// unwrapPathErr returns the cause of a *fs.PathError (its text without
// the operation and path, which the message gives already).
func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
