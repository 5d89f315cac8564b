package model

import (
	"context"
	"strconv"
	"strings"

	"github.com/lowrank-go/lowrank/safetensors"
)

// PEFT's adapter folder layout (huggingface/peft, utils/save_and_load.py and
// tuners/lora/config.py).
const (
	// PEFTConfigName and PEFTWeightsName are the files of a PEFT adapter
	// folder.
	PEFTConfigName  = "adapter_config.json"
	PEFTWeightsName = "adapter_model.safetensors"
	// PEFTPrefix is the prefix PEFT gives the keys of the weights.
	PEFTPrefix     = "base_model.model."
	maxConfigBytes = 16 << 20
	// MaxRank is the largest r (or rank_pattern value) accepted.
	MaxRank = 1 << 30
	maxRank = MaxRank
)

// PEFTKey returns the key PEFT stores a LoRA matrix ("A" or "B") of module
// under: "base_model.model.<module>.lora_A.weight".
func PEFTKey(module, ab string) string {
	return PEFTPrefix + module + ".lora_" + ab + ".weight"
}

// KohyaName returns the kohya-style name of a module: prefix, "_", and the
// module path with dots turned into underscores, as kohya-ss/sd-scripts
// names its LoRA modules ("lora_unet_down_blocks_0_…").
func KohyaName(prefix, module string) string {
	return prefix + "_" + strings.ReplaceAll(module, ".", "_")
}

// KohyaStem returns the module path kohya-ss/sd-scripts names a LoRA
// module after: module without the prefix a full Stable Diffusion
// checkpoint puts before its UNet ("model.diffusion_model."), its SD 1.x
// text encoder ("cond_stage_model.transformer.") or SDXL's first text
// encoder ("conditioner.embedders.0.transformer."), so that a LoRA of an
// LDM-named checkpoint reads "lora_unet_input_blocks_1_0_…", as such
// LoRAs do, and maps onto an LDM- or a diffusers-named base.
func KohyaStem(module string) string {
	for _, p := range []string{ldmUNetPrefix, ldmTextPrefix, sgmText1Prefix} {
		if rest, ok := strings.CutPrefix(module, p); ok && rest != "" {
			return rest
		}
	}
	return module
}

// KohyaPrefixOf returns the kohya prefix a Stable Diffusion module is
// named with — "lora_te" for a full checkpoint's SD 1.x text encoder,
// "lora_te1" for SDXL's first, "lora_unet" for the UNet (a full
// checkpoint's model.diffusion_model., or a UNet file's own names:
// down_blocks…, input_blocks…, conv_in, …) — and ok; ok is false for
// other modules (the caller's prefix applies). With explicit, a prefix the
// user chose, the UNet keeps it: only the text encoders, which kohya
// readers find by their prefix alone, are renamed.
func KohyaPrefixOf(module string, explicit bool) (string, bool) {
	switch {
	case strings.HasPrefix(module, ldmTextPrefix):
		return "lora_te", true
	case strings.HasPrefix(module, sgmText1Prefix):
		return "lora_te1", true
	case explicit:
	case strings.HasPrefix(module, ldmUNetPrefix), unetStyle(strings.ReplaceAll(module, ".", "_")) != "":
		return "lora_unet", true
	}
	return "", false
}

// PEFTEmbeddingKey returns the key PEFT stores an embedding LoRA matrix
// ("A" or "B") of module under: "base_model.model.<module>.lora_embedding_A"
// (a parameter, without ".weight"; A is r × vocab, B hidden × r).
func PEFTEmbeddingKey(module, ab string) string {
	return PEFTPrefix + module + ".lora_embedding_" + ab
}

// loraModule is one module of an adapter file being merged.
type loraModule struct {
	module     string // module name (base tensor = module + ".weight")
	base       string // the base's name for module, when a prefix maps it (basePrefixMap); "" otherwise
	aKey, bKey string
	alphaKey   string // kohya only
	embedding  bool   // PEFT's lora_embedding_A/B
}

// parsePEFTKeys groups the tensors of a PEFT adapter file by module. Keys
// are "[base_model.model.]<module>.lora_A[.<adapter>].weight" (Linear and
// Conv2d modules) and "[base_model.model.]<module>.lora_embedding_A[.<adapter>]"
// (Embedding modules); anything else (DoRA magnitudes, LoRA biases,
// modules_to_save) is an error naming the key.
func parsePEFTKeys(ctx context.Context, f *safetensors.File) ([]*loraModule, error) {
	byModule := map[string]*loraModule{}
	var order []string
	for ti, t := range f.Tensors() {
		if err := tick(ctx, ti); err != nil {
			return nil, err
		}
		key := strings.TrimPrefix(t.Name, PEFTPrefix)
		module, ab, emb, ok := splitLoraKey(key)
		if !ok {
			return nil, tensorErr(ErrUnsupported, f.Path(), t.Name, "not a LoRA weight; expected keys <module>.lora_A.weight and <module>.lora_B.weight, or <module>.lora_embedding_A and <module>.lora_embedding_B (DoRA, bias and modules_to_save entries are not supported)")
		}
		m := byModule[module]
		if m == nil {
			m = &loraModule{module: module, embedding: emb}
			byModule[module] = m
			order = append(order, module)
		}
		if m.embedding != emb {
			return nil, tensorErr(ErrFormat, f.Path(), t.Name, "module %q has both lora_A/lora_B and lora_embedding_A/lora_embedding_B keys; expected one kind", module)
		}
		dst := &m.aKey
		if ab == "B" {
			dst = &m.bKey
		}
		if *dst != "" {
			return nil, tensorErr(ErrFormat, f.Path(), t.Name, "second lora_%s for module %q (also %q); expected one adapter per file", ab, module, *dst)
		}
		*dst = t.Name
	}
	var mods []*loraModule
	for _, name := range order {
		m := byModule[name]
		if m.aKey == "" || m.bKey == "" {
			return nil, fileErr(ErrFormat, f.Path(), "module %q has only one of lora_A and lora_B; expected both", name)
		}
		mods = append(mods, m)
	}
	return mods, nil
}

// splitLoraKey splits "<module>.lora_A[.<adapter>].weight" and
// "<module>.lora_embedding_A[.<adapter>]" (embedding reports the second).
func splitLoraKey(key string) (module, ab string, embedding, ok bool) {
	split := func(rest, kind string) (string, string, bool) {
		for _, x := range []string{"A", "B"} {
			marker := "." + kind + x
			i := strings.LastIndex(rest, marker)
			if i <= 0 {
				continue
			}
			tail := rest[i+len(marker):]
			if tail == "" || (strings.HasPrefix(tail, ".") && !strings.Contains(tail[1:], ".") && len(tail) > 1) {
				return rest[:i], x, true
			}
		}
		return "", "", false
	}
	if rest, found := strings.CutSuffix(key, ".weight"); found {
		if module, ab, ok := split(rest, "lora_"); ok {
			return module, ab, false, true
		}
	}
	if module, ab, ok := split(key, "lora_embedding_"); ok {
		return module, ab, true, true
	}
	return "", "", false, false
}

// isKohya reports whether an adapter file uses kohya's lora_down/lora_up
// keys.
func isKohya(f *safetensors.File) bool {
	for _, t := range f.Tensors() {
		if strings.HasSuffix(t.Name, ".lora_down.weight") {
			return true
		}
	}
	return false
}

// DefaultKohyaPrefixes returns the prefixes tried when neither the caller
// (AdapterOptions.KohyaPrefixes, lowrank merge --kohya-prefix) nor the
// adapter's own lowrank metadata names one: extract's default and those of
// kohya-ss/sd-scripts (networks/lora.py).
func DefaultKohyaPrefixes() []string {
	return []string{"lora", "lora_unet", "lora_te", "lora_te1", "lora_te2"}
}

// parseKohyaKeys groups a kohya adapter's tensors by LoRA name and maps
// each, exactly, to the base module whose kohya name it is: PREFIX, "_",
// and the module path with its dots turned into underscores, for one of
// prefixes. A name that two base modules (or two prefixes) could produce
// is an error naming both; a name none produces is returned in missing.
// baseModules are the base's modules (its tensors NAME.weight, as NAME),
// baseName how errors call the base. A name under none of prefixes is
// in missing too; the caller that gave its prefixes explicitly leaves
// those out (outsidePrefixes).
func parseKohyaKeys(ctx context.Context, f *safetensors.File, baseModules []string, baseName string, prefixes []string) (mods []*loraModule, missing []string, err error) {
	type parts struct{ down, up, alpha string }
	byName := map[string]*parts{}
	var order []string
	for i, t := range f.Tensors() {
		if err := tick(ctx, i); err != nil {
			return nil, nil, err
		}
		var name, kind string
		for _, suf := range []string{".lora_down.weight", ".lora_up.weight", ".alpha"} {
			if n, ok := strings.CutSuffix(t.Name, suf); ok {
				name, kind = n, suf
				break
			}
		}
		if name == "" {
			return nil, nil, tensorErr(ErrFormat, f.Path(), t.Name, "not a kohya LoRA key; expected NAME.lora_down.weight, NAME.lora_up.weight and NAME.alpha")
		}
		p := byName[name]
		if p == nil {
			p = &parts{}
			byName[name] = p
			order = append(order, name)
		}
		switch kind {
		case ".lora_down.weight":
			p.down = t.Name
		case ".lora_up.weight":
			p.up = t.Name
		default:
			p.alpha = t.Name
		}
	}
	// Module path with underscores for dots → the base tensor's module;
	// two modules that read the same that way are both kept, for the
	// error. Each module is also found under its aliases (kohyaAliases:
	// the UNet's LDM or diffusers name, the name without a checkpoint's
	// prefix), unless a module has that name itself.
	type target struct{ module, how, other, otherHow string }
	under := map[string]target{}
	claim := func(u, m, how string) {
		if c, dup := under[u]; dup {
			if c.module == m {
				return
			}
			if c.how != "" && how == "" { // a module's own name wins over an alias
				under[u] = target{module: m}
				return
			}
			if c.other == "" && (how == "") == (c.how == "") {
				c.other, c.otherHow = m, how
				under[u] = c
			}
			return
		}
		under[u] = target{module: m, how: how}
	}
	for i, m := range baseModules {
		if err := tick(ctx, i); err != nil {
			return nil, nil, err
		}
		claim(strings.ReplaceAll(m, ".", "_"), m, "")
	}
	upAttention := upAttentionOf(baseModules)
	for i, m := range baseModules {
		if err := tick(ctx, i); err != nil {
			return nil, nil, err
		}
		names, hows := kohyaAliases(m, upAttention)
		for j, a := range names {
			claim(strings.ReplaceAll(a, ".", "_"), m, hows[j]+" "+strconv.Quote(a))
		}
	}
	// Full kohya names bound to one prefix (kohyaFullAliases).
	full := map[string]target{}
	for i, m := range baseModules {
		if err := tick(ctx, i); err != nil {
			return nil, nil, err
		}
		names, hows := kohyaFullAliases(m)
		for j, a := range names {
			if _, own := under[strings.TrimPrefix(a, "lora_")]; own {
				continue
			}
			if c, dup := full[a]; dup && c.module != m {
				c.other, c.otherHow = m, hows[j]
				full[a] = c
				continue
			}
			full[a] = target{module: m, how: hows[j]}
		}
	}
	described := func(module, how string) string {
		if how == "" {
			return strconv.Quote(module + ".weight")
		}
		return strconv.Quote(module+".weight") + " (" + how + ")"
	}
	for i, name := range order {
		if err := tick(ctx, i); err != nil {
			return nil, nil, err
		}
		p := byName[name]
		if p.down == "" || p.up == "" {
			return nil, nil, fileErr(ErrFormat, f.Path(), "LoRA %q lacks lora_down or lora_up; expected both", name)
		}
		module, via := "", ""
		if c, ok := full[name]; ok {
			if c.other != "" {
				return nil, nil, fileErr(ErrFormat, f.Path(), "LoRA %q is the kohya name of both %s and %s of %s; expected names that stay distinct",
					name, described(c.module, c.how), described(c.other, c.otherHow), baseName)
			}
			module, via = c.module, "lora_te1"
		}
		for _, pre := range prefixes {
			rest, ok := strings.CutPrefix(name, pre+"_")
			if !ok {
				continue
			}
			c, ok := under[rest]
			if !ok {
				continue
			}
			if c.other != "" {
				return nil, nil, fileErr(ErrFormat, f.Path(), "LoRA %q is the kohya name of both %s and %s of %s (dots become underscores); expected names that stay distinct",
					name, described(c.module, c.how), described(c.other, c.otherHow), baseName)
			}
			if module != "" && module != c.module {
				return nil, nil, fileErr(ErrFormat, f.Path(), "LoRA %q names both %q (prefix %q) and %q (prefix %q) of %s; expected one: give the adapter's prefix with --kohya-prefix (AdapterOptions.KohyaPrefixes)",
					name, module+".weight", via, c.module+".weight", pre, baseName)
			}
			module, via = c.module, pre
		}
		if module == "" {
			missing = append(missing, name)
			continue
		}
		mods = append(mods, &loraModule{module: module, aKey: p.down, bKey: p.up, alphaKey: p.alpha})
	}
	return mods, missing, nil
}

// outsidePrefixes splits names into those under none of prefixes (PREFIX
// and "_" as they begin) and the others.
func outsidePrefixes(names, prefixes []string) (outside, under []string) {
	for _, n := range names {
		in := false
		for _, p := range prefixes {
			if strings.HasPrefix(n, p+"_") {
				in = true
				break
			}
		}
		if in {
			under = append(under, n)
		} else {
			outside = append(outside, n)
		}
	}
	return outside, under
}
