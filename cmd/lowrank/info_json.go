package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// infoDoc is what lowrank info --json prints for one path.
type infoDoc struct {
	Path string `json:"path"`
	// Kind is "safetensors" for a file, "peft" for an adapter folder.
	Kind string `json:"kind"`
	// Config is a PEFT adapter's adapter_config.json, as written.
	Config json.RawMessage `json:"adapter_config,omitempty"`
	// Modules are a PEFT adapter's modules, as merge reads them.
	Modules []infoModule `json:"modules,omitempty"`
	// File is the .safetensors file (a PEFT adapter's weights).
	File *infoFile `json:"file"`
	// Index and Shards are a model folder's (Kind "model-folder"): the
	// index file's name ("" for a lone model.safetensors) and each weight
	// file, in the order of their names (info_folder.go).
	Index  string      `json:"index,omitempty"`
	Shards []*infoFile `json:"shards,omitempty"`
	// Totals are a model folder's, over its shards.
	Totals *infoTotals `json:"totals,omitempty"`
}

// infoTotals are a model folder's totals in lowrank info --json.
type infoTotals struct {
	Tensors    int   `json:"tensors"`
	Parameters int64 `json:"parameters"`
	// TensorBytes is the bytes of the tensors' data (what an index's
	// metadata.total_size counts); Bytes the shard files' sizes.
	TensorBytes int64 `json:"tensor_bytes"`
	Bytes       int64 `json:"bytes"`
	// IndexTotalSize is the index's metadata.total_size, when it has one
	// (it may disagree with TensorBytes: lowrank does not rely on it).
	IndexTotalSize *int64 `json:"index_total_size,omitempty"`
}

// infoFile is one .safetensors file in lowrank info --json.
type infoFile struct {
	Path        string            `json:"path"`
	Bytes       int64             `json:"bytes"`
	HeaderBytes int64             `json:"header_bytes"`
	Parameters  int64             `json:"parameters"`
	Metadata    map[string]string `json:"metadata"`
	Tensors     []infoTensor      `json:"tensors"`
	// Lowrank is the lowrank metadata as the file records it (not
	// verified); LowrankError says why it could not be read.
	Lowrank      *model.Metadata `json:"lowrank,omitempty"`
	LowrankError string          `json:"lowrank_error,omitempty"`
	// Kohya are the modules of a kohya LoRA file.
	Kohya []kohyaModule `json:"kohya_modules,omitempty"`
	// KohyaOther are the tensors of a kohya file that are no part of a
	// LoRA module lowrank reads (LyCORIS lora_mid, hada_*, lokr_*,
	// dora_scale, diff, …): lowrank merge refuses such a file.
	KohyaOther []string `json:"kohya_other_tensors,omitempty"`
}

type infoTensor struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
	Bytes int64  `json:"bytes"`
}

// infoModule is one module of a PEFT adapter.
type infoModule struct {
	Module  string  `json:"module"`
	Kind    string  `json:"kind"`
	B       []int   `json:"b_shape"`
	A       []int   `json:"a_shape"`
	DType   string  `json:"dtype"`
	Rank    int     `json:"rank"`
	Scaling float64 `json:"scaling"`
}

// kohyaModule is one module of a kohya LoRA file: NAME.lora_up.weight,
// NAME.lora_down.weight and NAME.alpha.
type kohyaModule struct {
	Name  string   `json:"name"`
	Kind  string   `json:"kind"`
	Up    []int    `json:"up_shape"`
	Down  []int    `json:"down_shape"`
	Alpha *float64 `json:"alpha"`
	// Scaling is alpha/r (1 without alpha).
	Scaling float64 `json:"scaling"`
}

// kohyaModuleOf describes the kohya module whose lora_down tensor is down
// (2-D r×k for a Linear, 4-D r × in × k_h × k_w for a Conv2d).
func kohyaModuleOf(f *safetensors.File, down safetensors.TensorInfo) kohyaModule {
	name := strings.TrimSuffix(down.Name, ".lora_down.weight")
	up, _ := f.Tensor(name + ".lora_up.weight")
	k := kohyaModule{Name: name, Kind: "linear", Up: up.Shape, Down: down.Shape, Scaling: 1}
	if len(down.Shape) == 4 {
		k.Kind = fmt.Sprintf("conv %d×%d", down.Shape[2], down.Shape[3])
	}
	if a, err := f.Scalar(name + ".alpha"); err == nil {
		k.Alpha = &a
		if down.Shape[0] > 0 {
			k.Scaling = a / float64(down.Shape[0])
		}
	}
	return k
}

func (k kohyaModule) alphaText() string {
	if k.Alpha == nil {
		return "-"
	}
	return fmt.Sprintf("%g", *k.Alpha)
}

func (k kohyaModule) scalingText() string {
	if k.Alpha == nil {
		return "1 (no alpha)"
	}
	return fmt.Sprintf("%g", k.Scaling)
}

// moduleKindText names an adapter module's kind: linear, conv k_h×k_w or
// embedding.
func moduleKindText(m model.AdapterModule) string {
	switch {
	case m.Embedding:
		return "embedding"
	case m.Kernel != nil:
		return fmt.Sprintf("conv %d×%d", m.Kernel[0], m.Kernel[1])
	}
	return "linear"
}

// infoJSON reads the file or adapter folder at path for info --json.
func infoJSON(path string, dir bool, mem *budget) (infoDoc, error) {
	if !dir {
		f, err := mem.open(path)
		if err != nil {
			return infoDoc{}, err
		}
		defer f.Close()
		fd, err := fileDoc(f)
		return infoDoc{Path: path, Kind: "safetensors", File: fd}, err
	}
	ad, err := model.InspectAdapter(path, model.AdapterOptions{Context: cmdContext, Budget: mem, OpenFile: mem.open})
	if err != nil {
		if cmdContext.Err() != nil {
			return infoDoc{}, errInterrupted
		}
		return infoDoc{}, err
	}
	defer ad.Close()
	d := infoDoc{Path: path, Kind: "peft", Modules: []infoModule{}}
	if raw := ad.PEFT().Raw; json.Valid(raw) {
		d.Config = json.RawMessage(raw)
	}
	for _, m := range ad.Modules() {
		d.Modules = append(d.Modules, infoModule{Module: m.Module, Kind: moduleKindText(m), B: m.B.Shape, A: m.A.Shape,
			DType: string(m.A.DType), Rank: m.Rank, Scaling: m.Scale})
	}
	d.File, err = fileDoc(ad.File())
	return d, err
}

// fileDoc describes a .safetensors file for info --json.
func fileDoc(f *safetensors.File) (*infoFile, error) {
	ts := f.Tensors()
	d := &infoFile{Path: f.Path(), Bytes: f.Size(), HeaderBytes: f.HeaderSize(), Metadata: f.Metadata(), Tensors: make([]infoTensor, 0, len(ts))}
	for i, t := range ts {
		if err := tick(i); err != nil {
			return nil, err
		}
		d.Parameters += int64(t.NumElements())
		d.Tensors = append(d.Tensors, infoTensor{Name: t.Name, DType: string(t.DType), Shape: t.Shape, Bytes: t.Size()})
	}
	if raw, ok := f.Metadata()[metaKey]; ok {
		if md, err := model.ParseMetadata(raw); err != nil {
			d.LowrankError = strip(err)
		} else {
			d.Lowrank = md
		}
	}
	if model.IsKohya(f) {
		for _, t := range ts {
			if strings.HasSuffix(t.Name, ".lora_down.weight") && (len(t.Shape) == 2 || len(t.Shape) == 4) {
				d.Kohya = append(d.Kohya, kohyaModuleOf(f, t))
			}
			if !isKohyaKey(t.Name) {
				d.KohyaOther = append(d.KohyaOther, t.Name)
			}
		}
	}
	return d, nil
}

// isKohyaKey reports whether name is one of the keys of a kohya LoRA
// module that lowrank reads: NAME.lora_down.weight, NAME.lora_up.weight,
// NAME.alpha.
func isKohyaKey(name string) bool {
	for _, suf := range []string{".lora_down.weight", ".lora_up.weight", ".alpha"} {
		if strings.HasSuffix(name, suf) {
			return true
		}
	}
	return false
}
