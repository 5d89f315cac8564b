package strictjson

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Unmarshal reads data strictly into v (a pointer), as encoding/json would
// but for the rules of this package, and in one pass without building a
// tree: a struct field is matched only by its exact json tag name (or its
// Go name when it has none), never case-folded; a key twice is an error;
// keys with no field are checked and skipped. Supported: structs, maps with
// string keys, slices, strings, booleans, integers (written without
// fraction or exponent), floats (finite), pointers and any (which receives
// nil, bool, float64, string, []any or map[string]any).
func Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("strictjson: Unmarshal needs a non-nil pointer, got %T", v)
	}
	s := NewScanner(data)
	if err := s.decode(rv.Elem(), ""); err != nil {
		return err
	}
	return s.End()
}

func (s *Scanner) typeErr(where string, got Kind, want string) error {
	if where != "" {
		where = " " + where
	}
	return s.errAt(s.pos, "value%s is %s; expected %s", where, got, want)
}

func (s *Scanner) decode(rv reflect.Value, where string) error {
	k, err := s.Peek()
	if err != nil {
		return err
	}
	switch rv.Kind() {
	case reflect.Pointer:
		if k == Null {
			rv.SetZero()
			return s.Null()
		}
		if rv.IsNil() {
			rv.Set(reflect.New(rv.Type().Elem()))
		}
		return s.decode(rv.Elem(), where)
	case reflect.Interface:
		if rv.NumMethod() != 0 {
			return fmt.Errorf("strictjson: cannot decode into %s", rv.Type())
		}
		val, err := s.Value()
		if err != nil {
			return err
		}
		rv.Set(reflect.ValueOf(val.Any()))
		return nil
	}
	if k == Null { // as encoding/json: null leaves the value alone
		return s.Null()
	}
	switch rv.Kind() {
	case reflect.String:
		if k != String {
			return s.typeErr(where, k, "a string")
		}
		str, err := s.String()
		rv.SetString(str)
		return err
	case reflect.Bool:
		if k != Bool {
			return s.typeErr(where, k, "true or false")
		}
		b, err := s.Bool()
		rv.SetBool(b)
		return err
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if k != Number {
			return s.typeErr(where, k, "an integer")
		}
		off := s.pos
		lit, err := s.Number()
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(lit, 10, rv.Type().Bits())
		if err != nil {
			return s.errAt(off, "value%s %s is not an integer of %d bits", spaced(where), lit, rv.Type().Bits())
		}
		rv.SetInt(n)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if k != Number {
			return s.typeErr(where, k, "an integer")
		}
		off := s.pos
		lit, err := s.Number()
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(lit, 10, rv.Type().Bits())
		if err != nil {
			return s.errAt(off, "value%s %s is not a non-negative integer of %d bits", spaced(where), lit, rv.Type().Bits())
		}
		rv.SetUint(n)
		return nil
	case reflect.Float32, reflect.Float64:
		if k != Number {
			return s.typeErr(where, k, "a number")
		}
		off := s.pos
		lit, err := s.Number()
		if err != nil {
			return err
		}
		f, err := strconv.ParseFloat(lit, rv.Type().Bits())
		if err != nil || math.IsInf(f, 0) {
			return s.errAt(off, "value%s %s is out of range", spaced(where), lit)
		}
		rv.SetFloat(f)
		return nil
	case reflect.Slice:
		if k != Array {
			return s.typeErr(where, k, "an array")
		}
		s.BeginArray()
		out := reflect.MakeSlice(rv.Type(), 0, 0)
		for i := 0; ; i++ {
			more, err := s.NextElem()
			if err != nil {
				return err
			}
			if !more {
				break
			}
			e := reflect.New(rv.Type().Elem()).Elem()
			if err := s.decode(e, fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
			out = reflect.Append(out, e)
		}
		rv.Set(out)
		return nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("strictjson: cannot decode into %s", rv.Type())
		}
		if k != Object {
			return s.typeErr(where, k, "an object")
		}
		s.BeginObject()
		if rv.IsNil() {
			rv.Set(reflect.MakeMap(rv.Type()))
		}
		var keys Keys
		for {
			off := s.pos
			key, more, err := s.NextKey()
			if err != nil || !more {
				return err
			}
			if err := keys.Add(key, off, s); err != nil {
				return err
			}
			e := reflect.New(rv.Type().Elem()).Elem()
			if err := s.decode(e, fmt.Sprintf("%s[%q]", where, key)); err != nil {
				return err
			}
			rv.SetMapIndex(reflect.ValueOf(key).Convert(rv.Type().Key()), e)
		}
	case reflect.Struct:
		if k != Object {
			return s.typeErr(where, k, "an object")
		}
		s.BeginObject()
		fields := fieldsOf(rv.Type())
		var keys Keys
		for {
			off := s.pos
			key, more, err := s.NextKey()
			if err != nil || !more {
				return err
			}
			if err := keys.Add(key, off, s); err != nil {
				return err
			}
			i, ok := fields[key]
			if !ok {
				if err := s.Skip(); err != nil {
					return err
				}
				continue
			}
			if err := s.decode(rv.Field(i), fmt.Sprintf("%s.%s", where, key)); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("strictjson: cannot decode into %s", rv.Type())
}

func spaced(where string) string {
	if where == "" {
		return ""
	}
	return " " + where
}

// fieldsOf maps the exact JSON names of a struct's exported fields to
// their indexes.
func fieldsOf(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		m[name] = i
	}
	return m
}

// Any returns the value as encoding/json decodes into an any: nil, bool,
// float64, string, []any or map[string]any.
func (v Value) Any() any {
	switch v.Kind {
	case Bool:
		return v.Str == "true"
	case Number:
		f, _ := strconv.ParseFloat(v.Str, 64)
		return f
	case String:
		return v.Str
	case Array:
		a := make([]any, len(v.Elems))
		for i, e := range v.Elems {
			a[i] = e.Any()
		}
		return a
	case Object:
		m := make(map[string]any, len(v.Members))
		for _, e := range v.Members {
			m[e.Key] = e.Value.Any()
		}
		return m
	}
	return nil
}
