// Package strictjson reads JSON (RFC 8259) strictly, for files written by
// others: safetensors headers, adapter_config.json, the index of a sharded
// model, the manifest of our own output folders.
//
// Where encoding/json is lenient, this reader refuses:
//
//   - a key that appears twice in one object is an error (encoding/json
//     keeps the last one, Python's json too, serde the first or an error);
//   - keys are compared byte for byte: callers look keys up by their exact
//     spelling, never case-folded or Unicode-folded (encoding/json matches
//     "DType" and "ſhape" to fields dtype and shape);
//   - NaN, Infinity and -Infinity (which Python's json writes and reads)
//     are not JSON numbers: "NaN is not a JSON number";
//   - the text must be UTF-8, and a string may not hold an escaped lone
//     surrogate (\ud800) or a raw control character;
//   - nothing but white space may follow the value.
//
// Scanner reads a document piece by piece without building it (a
// safetensors header of a million entries is read in one pass, allocating
// only what the caller keeps); Parse builds a Value tree for small
// documents. Nesting is limited (MaxDepth), and Scanner.Skip checks a
// skipped value as strictly as the rest.
package strictjson

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects accepted.
const MaxDepth = 1000

// ErrSyntax is wrapped by every error about the text.
var ErrSyntax = errors.New("not valid JSON")

// Error is a problem at a byte offset of the text.
type Error struct {
	Offset int // of the byte at fault
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("not valid JSON: %s (at byte %d)", e.Msg, e.Offset)
}

func (e *Error) Unwrap() error { return ErrSyntax }

// Kind is the type of a JSON value.
type Kind uint8

// The JSON types.
const (
	Invalid Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

// String names the kind as messages do: "a string", "an object", ….
func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case Bool:
		return "a boolean"
	case Number:
		return "a number"
	case String:
		return "a string"
	case Array:
		return "an array"
	case Object:
		return "an object"
	}
	return "not a JSON value"
}

// Scanner reads one JSON document from a byte slice.
type Scanner struct {
	data  []byte
	pos   int
	depth int
	// after records, per open array or object, whether a first element
	// or member was read (so that the next one needs a comma).
	after []bool
}

// NewScanner returns a scanner over data.
func NewScanner(data []byte) *Scanner { return &Scanner{data: data} }

// Offset returns the offset of the next unread byte.
func (s *Scanner) Offset() int { return s.pos }

func (s *Scanner) errAt(off int, format string, args ...any) error {
	return &Error{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (s *Scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// Peek returns the kind of the next value without reading it, or an error
// when the next byte cannot start a value (with a clear message for NaN
// and Infinity).
func (s *Scanner) Peek() (Kind, error) {
	s.space()
	if s.pos >= len(s.data) {
		return Invalid, s.errAt(s.pos, "unexpected end of input; expected a value")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return Object, nil
	case c == '[':
		return Array, nil
	case c == '"':
		return String, nil
	case c == 't' || c == 'f':
		return Bool, nil
	case c == 'n':
		return Null, nil
	case c == '-' || c >= '0' && c <= '9':
		if c == '-' && s.pos+1 < len(s.data) && s.data[s.pos+1] == 'I' {
			return Invalid, s.errAt(s.pos, "-Infinity is not a JSON number")
		}
		return Number, nil
	case c == 'N':
		return Invalid, s.errAt(s.pos, "NaN is not a JSON number")
	case c == 'I':
		return Invalid, s.errAt(s.pos, "Infinity is not a JSON number")
	default:
		return Invalid, s.errAt(s.pos, "unexpected %s; expected a value", quoteByte(s.data, s.pos))
	}
}

func quoteByte(data []byte, i int) string {
	r, _ := utf8.DecodeRune(data[i:])
	if r == utf8.RuneError {
		return fmt.Sprintf("byte %#x", data[i])
	}
	return strconv.QuoteRune(r)
}

func (s *Scanner) expect(c byte, what string) error {
	s.space()
	if s.pos >= len(s.data) {
		return s.errAt(s.pos, "unexpected end of input; expected %s", what)
	}
	if s.data[s.pos] != c {
		return s.errAt(s.pos, "unexpected %s; expected %s", quoteByte(s.data, s.pos), what)
	}
	s.pos++
	return nil
}

func (s *Scanner) open(c byte, what string) error {
	if err := s.expect(c, what); err != nil {
		return err
	}
	if s.depth >= MaxDepth {
		return s.errAt(s.pos-1, "nested deeper than %d levels (exceeded max depth)", MaxDepth)
	}
	s.depth++
	s.after = append(s.after, false)
	return nil
}

func (s *Scanner) close() {
	s.depth--
	s.after = s.after[:len(s.after)-1]
}

// BeginObject reads the '{' of an object.
func (s *Scanner) BeginObject() error { return s.open('{', "'{' (an object)") }

// BeginArray reads the '[' of an array.
func (s *Scanner) BeginArray() error { return s.open('[', "'[' (an array)") }

// NextKey reads the next member's key of the object being read, and the
// ':' after it; ok is false (and the '}' read) at the end of the object.
// Duplicate keys are the caller's to detect (Skip and Parse do).
func (s *Scanner) NextKey() (key string, ok bool, err error) {
	more, err := s.more('}', "'}' or ','")
	if err != nil || !more {
		return "", false, err
	}
	if k, err := s.Peek(); err != nil || k != String {
		if err == nil {
			err = s.errAt(s.pos, "unexpected %s; expected a string key", quoteByte(s.data, s.pos))
		}
		return "", false, err
	}
	key, err = s.String()
	if err != nil {
		return "", false, err
	}
	if err := s.expect(':', "':' after the key"); err != nil {
		return "", false, err
	}
	return key, true, nil
}

// NextElem reports whether the array being read has another element (and
// reads the ',' before it); at the end it reads the ']' and returns false.
func (s *Scanner) NextElem() (bool, error) { return s.more(']', "']' or ','") }

func (s *Scanner) more(end byte, what string) (bool, error) {
	s.space()
	if s.pos >= len(s.data) {
		return false, s.errAt(s.pos, "unexpected end of input; expected %s", what)
	}
	top := len(s.after) - 1
	if s.data[s.pos] == end {
		s.pos++
		s.close()
		return false, nil
	}
	if s.after[top] {
		if s.data[s.pos] != ',' {
			return false, s.errAt(s.pos, "unexpected %s; expected %s", quoteByte(s.data, s.pos), what)
		}
		s.pos++
		s.space()
		if s.pos < len(s.data) && s.data[s.pos] == end {
			return false, s.errAt(s.pos, "unexpected %s after ','; expected another value", quoteByte(s.data, s.pos))
		}
	}
	s.after[top] = true
	return true, nil
}

// String reads a string value and returns it decoded.
func (s *Scanner) String() (string, error) {
	if err := s.expect('"', "'\"' (a string)"); err != nil {
		return "", err
	}
	start := s.pos
	// Fast path: no escapes.
	for i := start; i < len(s.data); i++ {
		c := s.data[i]
		if c == '"' {
			if !utf8.Valid(s.data[start:i]) {
				return "", s.badUTF8(start, i)
			}
			s.pos = i + 1
			return string(s.data[start:i]), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", s.errAt(i, "raw control character %#x in a string; expected it escaped", c)
		}
	}
	var b strings.Builder
	i := start
	for {
		if i >= len(s.data) {
			return "", s.errAt(start-1, "unterminated string")
		}
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return b.String(), nil
		case c < 0x20:
			return "", s.errAt(i, "raw control character %#x in a string; expected it escaped", c)
		case c == '\\':
			if i+1 >= len(s.data) {
				return "", s.errAt(start-1, "unterminated string")
			}
			e := s.data[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, ok := hex4(s.data, i)
				if !ok {
					return "", s.errAt(i-2, "bad \\u escape; expected four hex digits")
				}
				i += 4
				if utf16.IsSurrogate(r) {
					r2, ok := rune(-1), false
					if r < 0xdc00 && i+6 <= len(s.data) && s.data[i] == '\\' && s.data[i+1] == 'u' {
						r2, ok = hex4(s.data, i+2)
					}
					dec := utf16.DecodeRune(r, r2)
					if !ok || dec == utf8.RuneError {
						return "", s.errAt(i-6, "lone surrogate \\u%04x in a string; expected a pair or a character", r)
					}
					r = dec
					i += 6
				}
				b.WriteRune(r)
			default:
				return "", s.errAt(i-2, "unknown escape \\%c", e)
			}
		default:
			r, n := utf8.DecodeRune(s.data[i:])
			if r == utf8.RuneError && n <= 1 {
				return "", s.badUTF8(i, i+1)
			}
			b.Write(s.data[i : i+n])
			i += n
		}
	}
}

func (s *Scanner) badUTF8(from, to int) error {
	i := from
	for i < to {
		r, n := utf8.DecodeRune(s.data[i:to])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		i += n
	}
	return s.errAt(i, "byte %#x is not UTF-8; expected UTF-8 text", s.data[i])
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// Number reads a number and returns it as written (for the caller to
// parse: a dimension must be plain digits, a rank an integer, …).
func (s *Scanner) Number() (string, error) {
	k, err := s.Peek()
	if err != nil {
		return "", err
	}
	if k != Number {
		return "", s.errAt(s.pos, "%s is %s; expected a number", quoteByte(s.data, s.pos), k)
	}
	start, i := s.pos, s.pos
	d := s.data
	digits := func() int {
		n := 0
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if d[i] == '-' {
		i++
	}
	if i < len(d) && d[i] == '0' {
		i++
	} else if digits() == 0 {
		return "", s.errAt(start, "bad number; expected digits")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if digits() == 0 {
			return "", s.errAt(i, "bad number; expected digits after '.'")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if digits() == 0 {
			return "", s.errAt(i, "bad number; expected digits in the exponent")
		}
	}
	if i < len(d) && (d[i] >= '0' && d[i] <= '9' || d[i] == '.' || d[i] == 'e' || d[i] == 'E' || d[i] == 'x' || d[i] == 'X') {
		return "", s.errAt(i, "bad number %q (a leading zero or a stray character)", string(d[start:i+1]))
	}
	s.pos = i
	return string(d[start:i]), nil
}

// Bool reads true or false.
func (s *Scanner) Bool() (bool, error) {
	s.space()
	switch {
	case s.lit("true"):
		return true, nil
	case s.lit("false"):
		return false, nil
	}
	return false, s.errAt(s.pos, "unexpected %s; expected true or false", s.near())
}

// Null reads null.
func (s *Scanner) Null() error {
	s.space()
	if s.lit("null") {
		return nil
	}
	return s.errAt(s.pos, "unexpected %s; expected null", s.near())
}

func (s *Scanner) near() string {
	if s.pos >= len(s.data) {
		return "end of input"
	}
	return quoteByte(s.data, s.pos)
}

func (s *Scanner) lit(w string) bool {
	if bytes.HasPrefix(s.data[s.pos:], []byte(w)) {
		end := s.pos + len(w)
		if end < len(s.data) {
			if c := s.data[end]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
				return false
			}
		}
		s.pos = end
		return true
	}
	return false
}

// Skip reads and checks the next value, whatever it is, without keeping it:
// syntax, UTF-8, nesting and duplicate keys are checked as for any value.
func (s *Scanner) Skip() error {
	k, err := s.Peek()
	if err != nil {
		return err
	}
	switch k {
	case Null:
		return s.Null()
	case Bool:
		_, err = s.Bool()
	case Number:
		_, err = s.Number()
	case String:
		_, err = s.String()
	case Array:
		if err = s.BeginArray(); err != nil {
			return err
		}
		for {
			more, err := s.NextElem()
			if err != nil || !more {
				return err
			}
			if err := s.Skip(); err != nil {
				return err
			}
		}
	case Object:
		if err = s.BeginObject(); err != nil {
			return err
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
			if err := s.Skip(); err != nil {
				return err
			}
		}
	}
	return err
}

// Keys detects duplicate keys in one object.
type Keys struct{ seen map[string]struct{} }

// Add records key, read at offset off, and fails if the object already had
// it.
func (k *Keys) Add(key string, off int, s *Scanner) error {
	if k.seen == nil {
		k.seen = map[string]struct{}{}
	}
	if _, dup := k.seen[key]; dup {
		return s.Duplicate(key, off)
	}
	k.seen[key] = struct{}{}
	return nil
}

// Duplicate returns the error for a key read twice in one object.
func (s *Scanner) Duplicate(key string, off int) error {
	s.pos = off
	s.space()
	return s.errAt(s.pos, "key %q appears twice in one object; expected unique keys", key)
}

// End checks that only white space follows the value read.
func (s *Scanner) End() error {
	s.space()
	if s.pos < len(s.data) {
		return s.errAt(s.pos, "%s after the value; expected the end of the text", quoteByte(s.data, s.pos))
	}
	return nil
}

// Value is a parsed JSON value.
type Value struct {
	Kind Kind
	// Str is a string's decoded text, a number as written, or "true" /
	// "false".
	Str     string
	Elems   []Value  // Array
	Members []Member // Object, in the order written
}

// Member is one key and value of an object.
type Member struct {
	Key   string
	Value Value
}

// Get returns the member of an object with exactly this key.
func (v Value) Get(key string) (Value, bool) {
	for _, m := range v.Members {
		if m.Key == key {
			return m.Value, true
		}
	}
	return Value{}, false
}

// Parse reads a whole document into a Value (for small documents: a value
// takes about 72 bytes, so a document of n bytes may take some 40·n bytes).
func Parse(data []byte) (Value, error) {
	s := NewScanner(data)
	v, err := s.Value()
	if err != nil {
		return Value{}, err
	}
	return v, s.End()
}

// Value reads the next value into a tree.
func (s *Scanner) Value() (Value, error) {
	k, err := s.Peek()
	if err != nil {
		return Value{}, err
	}
	v := Value{Kind: k}
	switch k {
	case Null:
		err = s.Null()
	case Bool:
		var b bool
		b, err = s.Bool()
		v.Str = strconv.FormatBool(b)
	case Number:
		v.Str, err = s.Number()
	case String:
		v.Str, err = s.String()
	case Array:
		if err = s.BeginArray(); err != nil {
			return Value{}, err
		}
		for {
			more, err := s.NextElem()
			if err != nil {
				return Value{}, err
			}
			if !more {
				break
			}
			e, err := s.Value()
			if err != nil {
				return Value{}, err
			}
			v.Elems = append(v.Elems, e)
		}
	case Object:
		if err = s.BeginObject(); err != nil {
			return Value{}, err
		}
		var keys Keys
		for {
			off := s.pos
			key, more, err := s.NextKey()
			if err != nil {
				return Value{}, err
			}
			if !more {
				break
			}
			if err := keys.Add(key, off, s); err != nil {
				return Value{}, err
			}
			e, err := s.Value()
			if err != nil {
				return Value{}, err
			}
			v.Members = append(v.Members, Member{key, e})
		}
	}
	if err != nil {
		return Value{}, err
	}
	return v, nil
}
