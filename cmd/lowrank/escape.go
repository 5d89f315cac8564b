package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Names and metadata come from files written by others: printed raw, an
// ESC sequence in a tensor name clears the screen or sets the terminal's
// title, and a newline forges a line of the table. They are printed
// escaped.

// esc returns s as it is when every character is printable, and otherwise
// quoted as Go quotes strings (strconv.Quote: control characters, ESC,
// newlines, Unicode format characters such as bidirectional overrides and
// invalid UTF-8 escaped); the empty name is shown as "".
func esc(s string) string {
	if s != "" && printable(s) {
		return s
	}
	return strconv.Quote(s)
}

// printable reports whether s is valid UTF-8 without control or format
// characters.
func printable(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += n
	}
	return true
}

// escJSONText escapes, as \uXXXX, the characters of JSON text that a
// terminal could act on but JSON allows raw inside strings (DEL, C1
// controls, format characters, line separators); the text stays valid
// JSON.
func escJSONText(s string) string {
	if printable(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return ' '
		}
		return r
	}, s)) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r != '\n' && r != '\t' && r != '\r' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError) {
			units := []rune{r}
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				units = []rune{r1, r2}
			}
			for _, u := range units {
				fmt.Fprintf(&b, `\u%04x`, u)
			}
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// csvCell protects a CSV cell of text that came from a file: one that a
// spreadsheet would read as a formula (starting with =, +, -, @, a tab or
// a carriage return) gets a leading ' (OWASP's advice against CSV
// injection).
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
