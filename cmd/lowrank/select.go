package main

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lowrank-go/lowrank/internal/osfile"
	"github.com/lowrank-go/lowrank/internal/strictjson"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// Which tensors factorize leaves alone, and why.

// inputEmbeddings are the last parts of the module names of input
// embeddings (nn.Embedding tables) in Hugging Face models: Llama, Mistral,
// Qwen, OPT, BART, T5 (embed_tokens), GPT-2 (wte, wpe), BERT and BLOOM
// (word_embeddings, position_embeddings, token_type_embeddings), GPT-NeoX
// (embed_in), Meta's Llama checkpoints (tok_embeddings), OPT and BART's
// positions (embed_positions), T5's shared table (shared, top level),
// CLIP's text encoder (token_embedding, position_embedding), Mamba
// (backbone.embedding), RWKV (emb), XLNet (word_embedding).
var inputEmbeddings = map[string]bool{
	"embed_tokens": true, "wte": true, "wpe": true, "word_embeddings": true, "position_embeddings": true,
	"token_type_embeddings": true, "embed_in": true, "tok_embeddings": true, "embed_positions": true,
	"token_embedding": true, "position_embedding": true, "embedding": true, "emb": true, "word_embedding": true,
}

// outputHeads are the last parts of the module names of output heads
// (a Linear of vocabulary × hidden): lm_head (most models), embed_out
// (GPT-NeoX); "output" only as a whole name (Meta's Llama checkpoints).
var outputHeads = map[string]bool{"lm_head": true, "embed_out": true}

// embeddingKind returns "embedding" for a weight named as an input
// embedding, "output head" for one named as an output head, "" otherwise.
func embeddingKind(tensor string) string {
	module, ok := moduleOf(tensor)
	if !ok {
		module = tensor
	}
	last := module[strings.LastIndex(module, ".")+1:]
	switch {
	case inputEmbeddings[last] || module == "shared":
		return "embedding"
	case outputHeads[last] || module == "output":
		return "output head"
	}
	return ""
}

// embeddings recognises the vocabulary matrices of a model: by name
// (embeddingKind), and by shape, vocabulary × hidden (either way round),
// where the vocabulary and hidden sizes come from config.json beside the
// model (vocab_size, and hidden_size, d_model or n_embd) or else from the
// shapes of the tensors recognised by name.
type embeddings struct {
	// shapes are the [vocabulary, hidden] pairs, with where each came from.
	shapes [][2]int
	from   []string
}

// newEmbeddings collects the vocabulary shapes of f; note is told when a
// config.json beside f cannot be read (the shapes then come from the names).
func newEmbeddings(f source, note func(string)) *embeddings {
	e := &embeddings{}
	add := func(v, h int, from string) {
		if v == h { // a square shape would catch ordinary layers
			return
		}
		for _, s := range e.shapes {
			if s == [2]int{v, h} {
				return
			}
		}
		e.shapes, e.from = append(e.shapes, [2]int{v, h}), append(e.from, from)
	}
	cfg := filepath.Join(filepath.Dir(f.Path()), "config.json")
	if v, h, err := readVocab(cfg); err == nil && v > 0 && h > 0 {
		add(v, h, fmt.Sprintf("vocab_size %d × hidden %d from %s", v, h, cfg))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		note(fmt.Sprintf("lowrank: note: %s not read (%v); embeddings are recognised by their names and shapes only", cfg, err))
	}
	for _, t := range f.Tensors() {
		if d, k, ok := t.Matrix(); ok && embeddingKind(t.Name) != "" { // an output head is vocabulary × hidden too
			add(d, k, fmt.Sprintf("the shape of %s", strconv.Quote(t.Name)))
		}
	}
	return e
}

// maxConfigBytes bounds the config.json read for the vocabulary size.
const maxConfigBytes = 4 << 20

// readVocab reads vocab_size and the hidden size from a Hugging Face
// config.json (strict JSON, at most maxConfigBytes; other keys ignored).
func readVocab(path string) (vocab, hidden int, err error) {
	f, _, err := osfile.OpenRegular(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return 0, 0, err
	}
	if len(raw) > maxConfigBytes {
		return 0, 0, fmt.Errorf("larger than %d bytes", maxConfigBytes)
	}
	var c struct {
		Vocab  *int `json:"vocab_size"`
		Hidden *int `json:"hidden_size"`
		DModel *int `json:"d_model"`
		NEmbd  *int `json:"n_embd"`
	}
	if err := strictjson.Unmarshal(raw, &c); err != nil {
		return 0, 0, err
	}
	num := func(n *int) int {
		if n == nil || *n < 0 {
			return 0
		}
		return *n
	}
	for _, h := range []*int{c.Hidden, c.DModel, c.NEmbd} {
		if hidden = num(h); hidden > 0 {
			break
		}
	}
	return num(c.Vocab), hidden, nil
}

// reason returns why factorize keeps the selected tensor t dense by
// default ("" when it does not): an embedding or output head by name, or
// a vocabulary-sized matrix by shape.
func (e *embeddings) reason(t safetensors.TensorInfo) string {
	if kind := embeddingKind(t.Name); kind != "" {
		return kind + " (by name): low-rank factors lose most of a vocabulary matrix; --include it to factorize"
	}
	d, k, ok := t.Matrix()
	if !ok {
		return ""
	}
	for i, s := range e.shapes {
		if (d == s[0] && k == s[1]) || (d == s[1] && k == s[0]) {
			return fmt.Sprintf("vocabulary × hidden (%s): low-rank factors lose most of a vocabulary matrix; --include it to factorize", e.from[i])
		}
	}
	return ""
}

// factorNames returns the names of f's tensors that are factors lowrank
// factorize wrote: the pairs NAME.A (r×k) and NAME.B (d×r), and the pairs
// its lowrank metadata records, with the count of recorded tensors.
func factorNames(f source) (map[string]bool, int) {
	out := map[string]bool{}
	for _, t := range f.Tensors() {
		name, ok := strings.CutSuffix(t.Name, ".A")
		if !ok {
			continue
		}
		b, ok := f.Tensor(name + ".B")
		if !ok {
			continue
		}
		_, k, okA := t.Matrix()
		_, r, okB := b.Matrix()
		if okA && okB && r == t.Shape[0] && k > 0 {
			out[t.Name], out[b.Name] = true, true
		}
	}
	n := 0
	if raw, ok := f.Metadata()[metaKey]; ok {
		if md, err := model.ParseMetadata(raw); err == nil {
			for name := range md.Tensors {
				n++
				for _, x := range []string{".A", ".B"} {
					if _, ok := f.Tensor(name + x); ok {
						out[name+x] = true
					}
				}
			}
		}
	}
	return out, n
}

// checkRefactorize refuses selected tensors that are factors lowrank
// factorize wrote (factorizing them again gives NAME.A.A and loses what
// the metadata records of them), unless --force-refactorize.
func checkRefactorize(f source, force bool, selected iter.Seq[string]) error {
	if force {
		return nil
	}
	factors, recorded := factorNames(f)
	if len(factors) == 0 {
		return nil
	}
	var hit []string
	n := 0
	for name := range selected {
		if factors[name] {
			if n++; len(hit) < 4 {
				hit = append(hit, name)
			}
		}
	}
	if n == 0 {
		return nil
	}
	more := ""
	if n > len(hit) {
		more = fmt.Sprintf(" and %d more", n-len(hit))
	}
	rec := ""
	if recorded > 0 {
		rec = fmt.Sprintf("; its %q metadata records %d factorized tensors", metaKey, recorded)
	}
	return fmt.Errorf("lowrank: %s: %s%s are factors lowrank factorize wrote (NAME.A and NAME.B)%s; factorizing them again would write NAME.A.A, …; expected a dense model (densify it first: lowrank merge %s -o DENSE.safetensors), --exclude '\\.[AB]$' to leave them out, or --force-refactorize",
		f.Path(), strings.Join(quoteAll(hit), ", "), more, rec, f.Path())
}

// carryRecords keeps, in mw's metadata, what f's lowrank metadata records
// of tensors copied as they are: the factor pairs neither of whose halves
// is selected, and the tensors kept dense that are not selected.
func carryRecords(f source, mw *model.Writer, selected func(name string) bool) {
	raw, ok := f.Metadata()[metaKey]
	if !ok {
		return
	}
	md, err := model.ParseMetadata(raw)
	if err != nil {
		return
	}
	for name, r := range md.Tensors {
		a, okA := f.Tensor(name + ".A")
		b, okB := f.Tensor(name + ".B")
		if okA && okB && !selected(a.Name) && !selected(b.Name) && string(a.DType) == r.DType {
			mw.AddRecord(name, r)
		}
	}
	for name, why := range md.Dense {
		if _, ok := f.Tensor(name); ok && !selected(name) {
			mw.MarkDense(name, why)
			if dt, ok := md.DenseSource[name]; ok {
				mw.SetSourceDType(name, safetensors.DType(dt))
			}
		}
	}
}
