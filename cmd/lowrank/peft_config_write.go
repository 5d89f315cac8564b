package main

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
)

// kv is one entry of a JSON object whose order matters.
type kv struct {
	Key   string
	Value any
}

// ordered is a JSON object written in the order of its entries.
type ordered []kv

func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.Key)
		v, err := json.Marshal(e.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// peftTaskTypes are the values of PEFT's TaskType (peft/utils/peft_types.py),
// the task_type of adapter_config.json.
var peftTaskTypes = []string{"SEQ_CLS", "SEQ_2_SEQ_LM", "CAUSAL_LM", "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION"}

// peftModule is one module of an extracted adapter.
type peftModule struct {
	name string
	rank int
}

// specificFirst orders module names so that PEFT's pattern lookup, which
// takes the first key matching as a suffix at a dot boundary, finds each
// module's own key before the key of a module whose name is a suffix of
// it ("encoder.fc1" before "fc1").
func specificFirst(names []string) {
	sort.SliceStable(names, func(i, j int) bool {
		di, dj := strings.Count(names[i], "."), strings.Count(names[j], ".")
		if di != dj {
			return di > dj
		}
		return names[i] < names[j]
	})
}

// peftConfigJSON builds adapter_config.json for modules extracted with
// lora_alpha = r per module (scaling α/r = 1: B·A is ΔW itself). r and
// lora_alpha are the most common rank; when ranks differ, rank_pattern and
// alpha_pattern list every module, most specific name first. fanIn is
// fan_in_fan_out: the base's weights are stored in × out.
func peftConfigJSON(mods []peftModule, baseModel, taskType string, fanIn bool) ([]byte, error) {
	count := map[int]int{}
	for _, m := range mods {
		count[m.rank]++
	}
	r := 0
	for rank, n := range count {
		if n > count[r] || (n == count[r] && rank > r) {
			r = rank
		}
	}
	names := make([]string, len(mods))
	rankOf := map[string]int{}
	for i, m := range mods {
		names[i] = m.name
		rankOf[m.name] = m.rank
	}
	targets := append([]string(nil), names...)
	sort.Strings(targets)
	rp, ap := ordered{}, ordered{}
	if len(count) > 1 {
		specificFirst(names)
		for _, n := range names {
			rp = append(rp, kv{n, rankOf[n]})
			ap = append(ap, kv{n, rankOf[n]})
		}
	}
	var base, task any
	if baseModel != "" {
		base = baseModel
	}
	if taskType != "" {
		task = taskType
	}
	cfg := ordered{
		{"alpha_pattern", ap},
		{"auto_mapping", nil},
		{"base_model_name_or_path", base},
		{"bias", "none"},
		{"fan_in_fan_out", fanIn},
		{"inference_mode", true},
		{"init_lora_weights", true},
		{"layers_pattern", nil},
		{"layers_to_transform", nil},
		{"lora_alpha", r},
		{"lora_dropout", json.RawMessage("0.0")},
		{"modules_to_save", nil},
		{"peft_type", "LORA"},
		{"r", r},
		{"rank_pattern", rp},
		{"revision", nil},
		{"target_modules", targets},
		{"task_type", task},
		{"use_rslora", false},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}
