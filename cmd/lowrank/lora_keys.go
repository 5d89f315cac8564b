package main

import (
	"strings"

	"github.com/lowrank-go/lowrank/model"
)

// PEFT's and kohya's adapter layouts, as the model package reads and
// writes them (it parses adapter_config.json, the keys and the kohya
// names for merge and info).
const (
	peftConfigName  = model.PEFTConfigName
	peftWeightsName = model.PEFTWeightsName
	peftPrefix      = model.PEFTPrefix
	maxRank         = model.MaxRank
)

// peftKey returns the adapter key of a LoRA matrix ("A" or "B") of module.
func peftKey(module, ab string) string { return model.PEFTKey(module, ab) }

// kohyaName returns the kohya-style name of a module (prefix, "_", and the
// module path with dots turned into underscores).
func kohyaName(prefix, module string) string { return model.KohyaName(prefix, module) }

// kohyaOut returns the kohya LoRA name extract writes for module, and the
// prefix it has: prefix (explicit when --kohya-prefix was given), or, for
// a full Stable Diffusion checkpoint's text encoders and (unless explicit)
// UNet, the prefix kohya names them with (model.KohyaPrefixOf), before the
// module's kohya stem.
func kohyaOut(prefix string, explicit bool, module string) (name, used string) {
	if p, ok := model.KohyaPrefixOf(module, explicit); ok {
		prefix = p
	}
	return kohyaName(prefix, model.KohyaStem(module)), prefix
}

// moduleOf returns the module a weight tensor belongs to: its name without
// the trailing ".weight".
func moduleOf(tensor string) (string, bool) {
	m, ok := strings.CutSuffix(tensor, ".weight")
	return m, ok && m != ""
}

// defaultKohyaPrefixes are the prefixes merge tries when neither
// --kohya-prefix nor the adapter's own lowrank metadata names one.
var defaultKohyaPrefixes = model.DefaultKohyaPrefixes()
