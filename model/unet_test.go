package model

import "testing"

// The LDM ↔ diffusers UNet names of SD 1.x, known pairs (the names of the
// original checkpoints and of diffusers' UNet2DConditionModel for the same
// weights), both ways.
func TestUNetNames(t *testing.T) {
	sd1 := func(b int) bool { return b > 0 }  // SD 1.x: up block 0 has no attentions
	sdxl := func(b int) bool { return b < 2 } // SDXL: up blocks 0 and 1 have them
	for _, c := range []struct {
		diffusers, ldm string
		upAttention    func(int) bool
	}{
		{"conv_in", "input_blocks.0.0", sd1},
		{"time_embedding.linear_1", "time_embed.0", sd1},
		{"time_embedding.linear_2", "time_embed.2", sd1},
		{"add_embedding.linear_1", "label_emb.0.0", sdxl},
		{"conv_norm_out", "out.0", sd1},
		{"conv_out", "out.2", sd1},
		{"down_blocks.0.attentions.0.proj_in", "input_blocks.1.1.proj_in", sd1},
		{"down_blocks.0.attentions.1.transformer_blocks.0.attn1.to_q", "input_blocks.2.1.transformer_blocks.0.attn1.to_q", sd1},
		{"down_blocks.0.resnets.0.conv1", "input_blocks.1.0.in_layers.2", sd1},
		{"down_blocks.0.downsamplers.0.conv", "input_blocks.3.0.op", sd1},
		{"down_blocks.1.resnets.0.conv_shortcut", "input_blocks.4.0.skip_connection", sd1},
		{"down_blocks.1.resnets.1.norm2", "input_blocks.5.0.out_layers.0", sd1},
		{"down_blocks.2.downsamplers.0.conv", "input_blocks.9.0.op", sd1},
		{"down_blocks.3.resnets.1.time_emb_proj", "input_blocks.11.0.emb_layers.1", sd1},
		{"mid_block.resnets.0.conv1", "middle_block.0.in_layers.2", sd1},
		{"mid_block.attentions.0.proj_out", "middle_block.1.proj_out", sd1},
		{"mid_block.resnets.1.conv2", "middle_block.2.out_layers.3", sd1},
		{"up_blocks.0.resnets.2.conv1", "output_blocks.2.0.in_layers.2", sd1},
		{"up_blocks.0.upsamplers.0.conv", "output_blocks.2.1.conv", sd1},
		{"up_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj", "output_blocks.3.1.transformer_blocks.0.ff.net.0.proj", sd1},
		{"up_blocks.1.upsamplers.0.conv", "output_blocks.5.2.conv", sd1},
		{"up_blocks.3.attentions.2.proj_out", "output_blocks.11.1.proj_out", sd1},
		{"up_blocks.3.resnets.2.conv_shortcut", "output_blocks.11.0.skip_connection", sd1},
		// SDXL: three levels, attentions in up blocks 0 and 1.
		{"up_blocks.0.upsamplers.0.conv", "output_blocks.2.2.conv", sdxl},
		{"up_blocks.1.upsamplers.0.conv", "output_blocks.5.2.conv", sdxl},
		{"down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_k", "input_blocks.8.1.transformer_blocks.9.attn2.to_k", sdxl},
	} {
		if got, ok := diffusersToLDM(c.diffusers, c.upAttention); !ok || got != c.ldm {
			t.Errorf("diffusersToLDM(%q) = %q, %v; want %q", c.diffusers, got, ok, c.ldm)
		}
		if got, ok := ldmToDiffusers(c.ldm); !ok || got != c.diffusers {
			t.Errorf("ldmToDiffusers(%q) = %q, %v; want %q", c.ldm, got, ok, c.diffusers)
		}
	}
	// Outside the layout: no translation.
	for _, n := range []string{"down_blocks.0.resnets.2.conv1", "down_blocks.0.downsamplers.1.conv", "up_blocks.0.resnets.3.conv1",
		"mid_block.resnets.2.conv1", "down_blocks.0.resnets.0.conv9", "down_blocks.x.resnets.0.conv1", "down_blocks.01.resnets.0.conv1",
		"encoder.layers.0.fc1", "up_blocks.0.attentions.0", ""} {
		if got, ok := diffusersToLDM(n, sd1); ok {
			t.Errorf("diffusersToLDM(%q) = %q; want no translation", n, got)
		}
	}
	for _, n := range []string{"input_blocks.3.1.proj_in", "input_blocks.2.0.op", "middle_block.3.proj_in", "output_blocks.1.1.conv",
		"input_blocks.1.2.proj_in", "input_blocks.1.0.in_layers.1", "model.diffusion_model.input_blocks.1.1.proj_in", "input_blocks.1.1"} {
		if got, ok := ldmToDiffusers(n); ok {
			t.Errorf("ldmToDiffusers(%q) = %q; want no translation", n, got)
		}
	}
}
