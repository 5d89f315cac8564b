package strictjson

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"a":1,"a":2}`, `key "a" appears twice`},
		{`{"a":1,"\u0061":2}`, `key "a" appears twice`},
		{`{"x":{"b":1,"b":1}}`, `appears twice`},
		{`NaN`, `NaN is not a JSON number`},
		{`{"r":NaN}`, `NaN is not a JSON number`},
		{`[Infinity]`, `Infinity is not a JSON number`},
		{`[-Infinity]`, `-Infinity is not a JSON number`},
		{`"\ud800"`, `lone surrogate \ud800`},
		{`"\udc00\ud800"`, `lone surrogate`},
		{"\"a\xffb\"", `byte 0xff is not UTF-8`},
		{"\"a\nb\"", `raw control character 0xa`},
		{`{"a":1} x`, `after the value`},
		{`{"a":1,}`, `after ','`},
		{`[1,]`, `after ','`},
		{`01`, `bad number`},
		{`1.`, `bad number`},
		{`-`, `bad number`},
		{`+1`, `unexpected '+'`},
		{`truex`, `expected true or false`},
		{`{"a" 1}`, `expected ':'`},
		{`{1:2}`, `expected a string key`},
		{`"\x"`, `unknown escape`},
		{`"\u12"`, `bad \u escape`},
		{``, `unexpected end of input`},
		{`[` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth+1), `exceeded max depth`},
	} {
		_, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "not valid JSON: ") {
			t.Errorf("Parse(%.40q) = %v; want an error containing %q", c.in, err, c.want)
		}
	}
}

// Whatever Parse accepts, encoding/json accepts with the same meaning
// (encoding/json is the independent reader here; the differential fuzz
// target in the safetensors package goes further).
func TestParseAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"a":[1,-2.5e3,0,true,false,null,"x\u00e9\ud83d\ude00\n\"\\\/"],"b":{}}`,
		` [ ] `, `"ſhape"`, `{"DType":"F16","dtype":"BF16"}`, `12345678901234567890`, `-0.0E+1`,
	} {
		v, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		var want any
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		got := toAny(v)
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if string(gj) != string(wj) {
			t.Errorf("Parse(%q) = %s; encoding/json reads %s", in, gj, wj)
		}
	}
	v, _ := Parse([]byte(`{"DType":"F16","dtype":"BF16"}`))
	if d, _ := v.Get("dtype"); d.Str != "BF16" {
		t.Errorf("Get is not exact: %v", d)
	}
	if _, ok := v.Get("DTYPE"); ok {
		t.Errorf("Get folded case")
	}
}

func toAny(v Value) any {
	switch v.Kind {
	case Bool:
		return v.Str == "true"
	case Number:
		var f float64
		json.Unmarshal([]byte(v.Str), &f)
		return f
	case String:
		return v.Str
	case Array:
		a := []any{}
		for _, e := range v.Elems {
			a = append(a, toAny(e))
		}
		return a
	case Object:
		m := map[string]any{}
		for _, e := range v.Members {
			m[e.Key] = toAny(e.Value)
		}
		return m
	}
	return nil
}

func TestUnmarshalExact(t *testing.T) {
	type inner struct {
		Rank  int     `json:"rank"`
		Error float64 `json:"rel_error"`
	}
	type doc struct {
		Format  string           `json:"format"`
		Tensors map[string]inner `json:"tensors"`
		List    []int            `json:"list"`
		Opt     *string          `json:"opt"`
		Any     any              `json:"any"`
	}
	var d doc
	err := Unmarshal([]byte(`{"format":"kohya","Format":"peft","tensors":{"w":{"rank":2,"RANK":9,"rel_error":0.5}},"list":[1,2],"opt":null,"any":{"x":[1,"a"]},"extra":{"deep":[1]}}`), &d)
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != "kohya" || d.Tensors["w"].Rank != 2 || d.Tensors["w"].Error != 0.5 || len(d.List) != 2 || d.Opt != nil {
		t.Errorf("decoded %+v: keys were folded or lost", d)
	}
	for _, c := range []struct{ in, want string }{
		{`{"format":"a","format":"b"}`, `key "format" appears twice`},
		{`{"tensors":{"w":{},"w":{}}}`, `key "w" appears twice`},
		{`{"list":[1.5]}`, `value .list[0] 1.5 is not an integer`},
		{`{"format":2}`, `value .format is a number; expected a string`},
		{`{"tensors":{"w":{"rel_error":NaN}}}`, `NaN is not a JSON number`},
		{`{"tensors":{"w":{"rel_error":1e999}}}`, `out of range`},
		{`{"extra":{"a":1,"a":2}}`, `appears twice`},
		{`{} {}`, `after the value`},
	} {
		var d doc
		if err := Unmarshal([]byte(c.in), &d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Unmarshal(%s) = %v; want an error containing %q", c.in, err, c.want)
		}
	}
}
