package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
)

// maxBody bounds a request's body: 64 MiB holds an input of 16 M
// float32s written as short JSON numbers.
const maxBody = 64 << 20

// Server answers forward requests for one base model and any number of
// adapters, applied unmerged and chosen per request. Its handler is safe
// for many concurrent requests: the model and adapters are shared, each
// layer is loaded on its first request and kept (on the GPU when there is
// one).
type Server struct {
	base     *model.Model
	adapters map[string]*model.Adapter
}

// NewServer opens the model at modelPath and the adapters (name → PEFT
// folder, or kohya file) against it.
func NewServer(modelPath string, adapters map[string]string) (*Server, error) {
	base, err := model.Open(modelPath)
	if err != nil {
		return nil, err
	}
	s := &Server{base: base, adapters: map[string]*model.Adapter{}}
	for name, path := range adapters {
		ad, err := model.OpenAdapterWith(path, model.AdapterOptions{Base: base})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("adapter %q: %w", name, err)
		}
		s.adapters[name] = ad
	}
	return s, nil
}

// Close releases the model and the adapters.
func (s *Server) Close() error {
	for _, ad := range s.adapters {
		ad.Close()
	}
	return s.base.Close()
}

// Request is the body of POST /forward: the module, one input vector
// (Input) or several (Inputs, one per row), and optionally the adapter to
// apply (by the name it was loaded under).
type Request struct {
	Module  string      `json:"module"`
	Input   []float32   `json:"input,omitempty"`
	Inputs  [][]float32 `json:"inputs,omitempty"`
	Adapter string      `json:"adapter,omitempty"`
}

// Response is the answer: Output for Input, Outputs for Inputs.
type Response struct {
	Output  []float32   `json:"output,omitempty"`
	Outputs [][]float32 `json:"outputs,omitempty"`
}

// Handler returns the server's routes: POST /forward, GET /modules.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /forward", s.forward)
	mux.HandleFunc("GET /modules", s.modules)
	return mux
}

func (s *Server) modules(w http.ResponseWriter, r *http.Request) {
	names := make([]string, 0, len(s.adapters))
	for n := range s.adapters {
		names = append(names, n)
	}
	sort.Strings(names)
	writeJSON(w, http.StatusOK, map[string][]string{"modules": s.base.Names(), "adapters": names})
}

func (s *Server) forward(w http.ResponseWriter, r *http.Request) {
	var req Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "lowrank: request: "+err.Error())
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		fail(w, http.StatusBadRequest, "lowrank: request: more than one JSON value; expected one object")
		return
	}
	if (req.Input == nil) == (req.Inputs == nil) {
		fail(w, http.StatusBadRequest, `lowrank: request: expected one of "input" (a vector) or "inputs" (a list of vectors)`)
		return
	}
	l, err := s.base.Linear(req.Module)
	if err != nil {
		failErr(w, err)
		return
	}
	var lora *model.LoRA
	if req.Adapter != "" {
		ad, ok := s.adapters[req.Adapter]
		if !ok {
			fail(w, http.StatusNotFound, fmt.Sprintf("lowrank: no adapter %q is loaded", req.Adapter))
			return
		}
		if lora, err = ad.LoRA(req.Module); err != nil && !errors.Is(err, model.ErrNotFound) {
			failErr(w, err)
			return
		} // an adapter that does not change this module leaves it alone
	}
	d, k := l.Dims()
	if req.Input != nil {
		y := make([]float32, d)
		if err := l.ForwardAdapter(y, req.Input, lora); err != nil {
			failErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, Response{Output: y})
		return
	}
	n := len(req.Inputs)
	x, err := lowrank.NewMatrix[float32](n, k, nil)
	if err != nil {
		failErr(w, err)
		return
	}
	for i, row := range req.Inputs {
		if len(row) != k {
			fail(w, http.StatusBadRequest, fmt.Sprintf("lowrank: module %q: inputs[%d] has length %d; expected %d", req.Module, i, len(row), k))
			return
		}
		copy(x.Row(i), row)
	}
	y, _ := lowrank.NewMatrix[float32](n, d, nil)
	if err := l.ForwardBatchAdapters(y, x, []*model.LoRA{lora}); err != nil {
		failErr(w, err)
		return
	}
	out := make([][]float32, n)
	for i := range out {
		out[i] = y.Row(i)
	}
	writeJSON(w, http.StatusOK, Response{Outputs: out})
}

// failErr answers err: 404 for what is not there, 400 for a bad input,
// 500 otherwise.
func failErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, model.ErrNotFound):
		fail(w, http.StatusNotFound, err.Error())
	case errors.Is(err, lowrank.ErrShape), errors.Is(err, lowrank.ErrNonFinite), errors.Is(err, lowrank.ErrEmpty), errors.Is(err, model.ErrMismatch):
		fail(w, http.StatusBadRequest, err.Error())
	default:
		fail(w, http.StatusInternalServerError, err.Error())
	}
}

func fail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
