package model

import (
	"fmt"
	"strconv"
	"strings"
)

// Stable Diffusion's UNet has two sets of module names: the original
// (LDM, CompVis, "SGM" for SDXL) ones of its checkpoints — input_blocks,
// middle_block, output_blocks, under model.diffusion_model. — and the
// diffusers ones — down_blocks, mid_block, up_blocks, under unet. or at
// the top. kohya LoRA files name modules either way
// (lora_unet_input_blocks_1_1_proj_in, lora_unet_down_blocks_0_attentions_0_proj_in).
// The functions below translate a module name between the two, for the
// layout SD 1.x, SD 2.x and SDXL share: two resnets per down block and
// three per up block (layers_per_block = 2), a downsampler after each
// down block but the last and an upsampler after each up block but the
// last, the mid block as resnet, attention, resnet. The attention blocks'
// insides (proj_in, transformer_blocks.N.attn1.to_q, ff.net.0.proj, …)
// have the same names on both sides; a resnet's parts are renamed
// (in_layers.2 ↔ conv1, …). A name outside that layout has no
// translation: it maps exactly or not at all.

// resnetParts pairs the parts of a resnet: LDM name, diffusers name.
var resnetParts = [][2]string{
	{"in_layers.0", "norm1"},
	{"in_layers.2", "conv1"},
	{"out_layers.0", "norm2"},
	{"out_layers.3", "conv2"},
	{"emb_layers.1", "time_emb_proj"},
	{"skip_connection", "conv_shortcut"},
}

// topParts pairs the modules outside the blocks: LDM name, diffusers name.
var topParts = [][2]string{
	{"time_embed.0", "time_embedding.linear_1"},
	{"time_embed.2", "time_embedding.linear_2"},
	{"label_emb.0.0", "add_embedding.linear_1"},
	{"label_emb.0.2", "add_embedding.linear_2"},
	{"input_blocks.0.0", "conv_in"},
	{"out.0", "conv_norm_out"},
	{"out.2", "conv_out"},
}

// attentionPart reports whether rest is a module inside an attention
// block (a Transformer2DModel / SpatialTransformer), whose names are the
// same on both sides.
func attentionPart(rest string) bool {
	switch rest {
	case "norm", "proj_in", "proj_out":
		return true
	}
	return strings.HasPrefix(rest, "transformer_blocks.")
}

// resnetPart maps a resnet's part from LDM (toDiffusers) or to LDM.
func resnetPart(part string, toDiffusers bool) (string, bool) {
	for _, p := range resnetParts {
		from, to := p[1], p[0]
		if toDiffusers {
			from, to = p[0], p[1]
		}
		if part == from {
			return to, true
		}
	}
	return "", false
}

// cutIndex splits "N.rest" into N and rest ("" when the name is just N).
func cutIndex(s string) (int, string, bool) {
	head, rest, _ := strings.Cut(s, ".")
	n, err := strconv.Atoi(head)
	if err != nil || n < 0 || strconv.Itoa(n) != head {
		return 0, "", false
	}
	return n, rest, true
}

// ldmToDiffusers translates an LDM UNet module name (without
// model.diffusion_model.) to its diffusers name.
func ldmToDiffusers(name string) (string, bool) {
	for _, p := range topParts {
		if name == p[0] {
			return p[1], true
		}
	}
	block := func(prefix string) (n, sub int, rest string, ok bool) {
		s, found := strings.CutPrefix(name, prefix)
		if !found {
			return 0, 0, "", false
		}
		if n, s, ok = cutIndex(s); !ok {
			return 0, 0, "", false
		}
		if sub, rest, ok = cutIndex(s); !ok || rest == "" {
			return 0, 0, "", false
		}
		return n, sub, rest, true
	}
	resnet := func(prefix, rest string) (string, bool) {
		part, ok := resnetPart(rest, true)
		return prefix + part, ok
	}
	if n, sub, rest, ok := block("input_blocks."); ok && n > 0 {
		b, j := (n-1)/3, (n-1)%3
		switch {
		case j == 2 && sub == 0 && rest == "op": // the downsampler after block b
			return "down_blocks." + strconv.Itoa(b) + ".downsamplers.0.conv", true
		case j < 2 && sub == 0:
			return resnet("down_blocks."+strconv.Itoa(b)+".resnets."+strconv.Itoa(j)+".", rest)
		case j < 2 && sub == 1 && attentionPart(rest):
			return "down_blocks." + strconv.Itoa(b) + ".attentions." + strconv.Itoa(j) + "." + rest, true
		}
		return "", false
	}
	if n, rest, ok := cutIndex(strings.TrimPrefix(name, "middle_block.")); ok && strings.HasPrefix(name, "middle_block.") && rest != "" {
		switch n {
		case 0, 2:
			return resnet("mid_block.resnets."+strconv.Itoa(n/2)+".", rest)
		case 1:
			return "mid_block.attentions.0." + rest, attentionPart(rest)
		}
		return "", false
	}
	if n, sub, rest, ok := block("output_blocks."); ok {
		b, j := n/3, n%3
		switch {
		case sub == 0:
			return resnet("up_blocks."+strconv.Itoa(b)+".resnets."+strconv.Itoa(j)+".", rest)
		case j == 2 && (sub == 1 || sub == 2) && rest == "conv": // the upsampler after block b
			return "up_blocks." + strconv.Itoa(b) + ".upsamplers.0.conv", true
		case sub == 1 && attentionPart(rest):
			return "up_blocks." + strconv.Itoa(b) + ".attentions." + strconv.Itoa(j) + "." + rest, true
		}
	}
	return "", false
}

// diffusersToLDM translates a diffusers UNet module name (without unet.)
// to its LDM name. upAttention(b) reports whether up block b has
// attentions (its upsampler is then the output block's third part, else
// its second).
func diffusersToLDM(name string, upAttention func(b int) bool) (string, bool) {
	for _, p := range topParts {
		if name == p[1] {
			return p[0], true
		}
	}
	// kind.b.part.j.rest
	parse := func(prefix string) (b int, part string, j int, rest string, ok bool) {
		s, found := strings.CutPrefix(name, prefix)
		if !found {
			return 0, "", 0, "", false
		}
		if b, s, ok = cutIndex(s); !ok {
			return 0, "", 0, "", false
		}
		part, s, _ = strings.Cut(s, ".")
		if j, rest, ok = cutIndex(s); !ok || rest == "" {
			return 0, "", 0, "", false
		}
		return b, part, j, rest, true
	}
	resnet := func(prefix, rest string) (string, bool) {
		part, ok := resnetPart(rest, false)
		return prefix + part, ok
	}
	if b, part, j, rest, ok := parse("down_blocks."); ok {
		n := strconv.Itoa(3*b + j + 1)
		switch {
		case part == "resnets" && j < 2:
			return resnet("input_blocks."+n+".0.", rest)
		case part == "attentions" && j < 2 && attentionPart(rest):
			return "input_blocks." + n + ".1." + rest, true
		case part == "downsamplers" && j == 0 && rest == "conv":
			return "input_blocks." + strconv.Itoa(3*(b+1)) + ".0.op", true
		}
		return "", false
	}
	if s, ok := strings.CutPrefix(name, "mid_block."); ok {
		part, s, _ := strings.Cut(s, ".")
		j, rest, ok := cutIndex(s)
		switch {
		case !ok || rest == "":
		case part == "resnets" && j < 2:
			return resnet("middle_block."+strconv.Itoa(2*j)+".", rest)
		case part == "attentions" && j == 0 && attentionPart(rest):
			return "middle_block.1." + rest, true
		}
		return "", false
	}
	if b, part, j, rest, ok := parse("up_blocks."); ok {
		n := strconv.Itoa(3*b + j)
		switch {
		case part == "resnets" && j < 3:
			return resnet("output_blocks."+n+".0.", rest)
		case part == "attentions" && j < 3 && attentionPart(rest):
			return "output_blocks." + n + ".1." + rest, true
		case part == "upsamplers" && j == 0 && rest == "conv":
			sub := "1"
			if upAttention(b) {
				sub = "2"
			}
			return "output_blocks." + strconv.Itoa(3*b+2) + "." + sub + ".conv", true
		}
	}
	return "", false
}

// Prefixes under which full checkpoints hold their UNet and text encoder.
const (
	ldmUNetPrefix       = "model.diffusion_model."
	diffusersUNetPrefix = "unet."
	ldmTextPrefix       = "cond_stage_model.transformer."
	// SDXL's checkpoints hold their first text encoder (CLIP ViT-L, in
	// Hugging Face CLIP naming) under sgmText1Prefix, kohya's lora_te1;
	// the second (OpenCLIP ViT-bigG, kohya's lora_te2) and SD 2.x's one
	// under the openCLIP prefixes, in OpenCLIP's naming.
	sgmText1Prefix = "conditioner.embedders.0.transformer."
)

// openCLIPPrefixes are where LDM-style checkpoints hold an OpenCLIP text
// encoder (SD 2.x; SDXL's second): resblocks.N.attn.in_proj_weight holds
// q, k and v in one tensor, so kohya's LoRA names for them (Hugging Face
// CLIP naming: self_attn.q_proj, …) have no one-to-one counterpart.
var openCLIPPrefixes = []string{"cond_stage_model.model.", "conditioner.embedders.1.model."}

// kohyaFullAliases returns the full kohya LoRA names (prefix included) a
// base module is known by, for a text encoder whose kohya prefix is bound
// to it: SDXL's first text encoder, lora_te1_ + its Hugging Face name.
func kohyaFullAliases(module string) (names, how []string) {
	if rest, ok := strings.CutPrefix(module, sgmText1Prefix); ok {
		return []string{"lora_te1_" + strings.ReplaceAll(rest, ".", "_")}, []string{"without " + sgmText1Prefix + ", as lora_te1"}
	}
	return nil, nil
}

// openCLIPMappingProblem returns the error for kohya text-encoder LoRA
// names (missing: none of the base's modules has them) when the base
// holds its text encoder in OpenCLIP naming; nil otherwise.
func openCLIPMappingProblem(path string, missing, baseModules []string, baseName string) error {
	where := ""
	for _, m := range baseModules {
		for _, p := range openCLIPPrefixes {
			if strings.HasPrefix(m, p) {
				where = p
				break
			}
		}
		if where != "" {
			break
		}
	}
	if where == "" {
		return nil
	}
	var names []string
	for _, n := range missing {
		if strings.HasPrefix(n, "lora_te_") || strings.HasPrefix(n, "lora_te2_") {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil
	}
	more := ""
	if len(names) > 3 {
		more = fmt.Sprintf(" and %d more", len(names)-3)
		names = names[:3]
	}
	return fileErr(ErrNotFound, path, "LoRA %s%s name a text encoder's modules the Hugging Face CLIP way (text_model_encoder_layers_N_self_attn_q_proj, …) but %s holds its text encoder in OpenCLIP naming under %q (q, k and v fused in resblocks.N.attn.in_proj_weight), which has no one-to-one mapping; expected a base whose text encoder is in Hugging Face naming (diffusers' text_encoder folders) or a LoRA without text-encoder modules",
		strings.Join(quoteAll(names), ", "), more, baseName, where)
}

// kohyaAliases returns the other names a base module is known by in
// kohya LoRA files, with how each was found: the UNet's name in the other
// naming (LDM ↔ diffusers), and the name without the prefix a full
// checkpoint puts before its UNet or SD 1.x text encoder. upAttention is
// diffusersToLDM's.
func kohyaAliases(module string, upAttention func(b int) bool) (names, how []string) {
	add := func(n, h string) {
		names, how = append(names, n), append(how, h)
	}
	switch {
	case strings.HasPrefix(module, ldmUNetPrefix):
		rest := strings.TrimPrefix(module, ldmUNetPrefix)
		add(rest, "without "+ldmUNetPrefix)
		if d, ok := ldmToDiffusers(rest); ok {
			add(d, "its diffusers name")
		}
	case strings.HasPrefix(module, ldmTextPrefix):
		add(strings.TrimPrefix(module, ldmTextPrefix), "without "+ldmTextPrefix)
	default:
		rest, unet := strings.CutPrefix(module, diffusersUNetPrefix)
		if unet {
			add(rest, "without "+diffusersUNetPrefix)
		}
		if d, ok := diffusersToLDM(rest, upAttention); ok {
			add(d, "its LDM name")
		} else if l, ok := ldmToDiffusers(rest); ok && !unet {
			add(l, "its diffusers name")
		}
	}
	return names, how
}

// upAttentionOf returns diffusersToLDM's upAttention for a base's
// modules: whether some module is under up_blocks.B.attentions.
func upAttentionOf(modules []string) func(b int) bool {
	has := map[int]bool{}
	for _, m := range modules {
		m = strings.TrimPrefix(m, diffusersUNetPrefix)
		if s, ok := strings.CutPrefix(m, "up_blocks."); ok {
			if b, rest, ok := cutIndex(s); ok && strings.HasPrefix(rest, "attentions.") {
				has[b] = true
			}
		}
	}
	return func(b int) bool { return has[b] }
}

// unetStyle says which naming a kohya LoRA name (after its prefix and "_")
// follows: "LDM" (input_blocks_…), "diffusers" (down_blocks_…), or "".
func unetStyle(rest string) string {
	for _, p := range []string{"input_blocks_", "middle_block_", "output_blocks_", "time_embed_", "label_emb_", "out_0", "out_2"} {
		if strings.HasPrefix(rest, p) {
			return "LDM"
		}
	}
	for _, p := range []string{"down_blocks_", "mid_block_", "up_blocks_", "time_embedding_", "add_embedding_", "conv_in", "conv_out", "conv_norm_out"} {
		if strings.HasPrefix(rest, p) {
			return "diffusers"
		}
	}
	return ""
}

// unetMappingProblem returns the error for kohya LoRA names (missing: none
// of the base's modules has them, directly or through kohyaAliases) that
// name UNet modules in the other naming than the base's: the table found
// no counterpart for them in the base. nil when no missing name is such.
func unetMappingProblem(path string, missing, prefixes, baseModules []string, baseName string) error {
	base := ""
	for _, m := range baseModules {
		m = strings.TrimPrefix(strings.TrimPrefix(m, ldmUNetPrefix), diffusersUNetPrefix)
		if st := unetStyle(strings.ReplaceAll(m, ".", "_")); st != "" {
			base = st
			break
		}
	}
	if base == "" {
		return nil
	}
	var names []string
	style := ""
	for _, n := range missing {
		for _, p := range prefixes { // "lora" and "lora_unet" both prefix lora_unet_…
			if rest, ok := strings.CutPrefix(n, p+"_"); ok {
				if st := unetStyle(rest); st != "" {
					if st != base {
						names, style = append(names, n), st
					}
					break
				}
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	more := ""
	if len(names) > 3 {
		more = fmt.Sprintf(" and %d more", len(names)-3)
		names = names[:3]
	}
	return fileErr(ErrNotFound, path, "LoRA %s%s name UNet modules the %s way but %s names its UNet the %s way, and the table between them (SD 1.x/2.x/XL layout: 2 resnets per down block, 3 per up block, attentions as the base has them) maps them to no module of the base; expected a LoRA for this model (or a base in %s naming)",
		strings.Join(quoteAll(names), ", "), more, style, baseName, base, style)
}
