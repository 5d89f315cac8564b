package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// readNpy reads a C-ordered little-endian float32 or float64 .npy file as
// T, returning its shape.
func readNpy[T float32 | float64](path string) ([]T, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var magic [8]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, nil, err
	}
	if string(magic[:6]) != "\x93NUMPY" {
		return nil, nil, fmt.Errorf("%s: not a .npy file", path)
	}
	var hlen int
	if magic[6] == 1 {
		var b [2]byte
		io.ReadFull(r, b[:])
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	} else {
		var b [4]byte
		io.ReadFull(r, b[:])
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, nil, err
	}
	h := string(hb)
	descr := regexp.MustCompile(`'descr':\s*'([^']*)'`).FindStringSubmatch(h)
	shapeM := regexp.MustCompile(`'shape':\s*\(([^)]*)\)`).FindStringSubmatch(h)
	if descr == nil || shapeM == nil || strings.Contains(h, "'fortran_order': True") {
		return nil, nil, fmt.Errorf("%s: unsupported header %q", path, h)
	}
	var shape []int
	n := 1
	for _, s := range strings.Split(shapeM[1], ",") {
		if s = strings.TrimSpace(s); s != "" {
			v, _ := strconv.Atoi(s)
			shape = append(shape, v)
			n *= v
		}
	}
	out := make([]T, n)
	switch descr[1] {
	case "<f4":
		buf := make([]byte, 4*n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, nil, err
		}
		for i := range out {
			out[i] = T(math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:])))
		}
	case "<f8":
		buf := make([]byte, 8*n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, nil, err
		}
		for i := range out {
			out[i] = T(math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:])))
		}
	default:
		return nil, nil, fmt.Errorf("%s: dtype %s", path, descr[1])
	}
	return out, shape, nil
}

// writeNpy writes a rows×cols matrix in its own float type.
func writeNpy[T float32 | float64](path string, rows, cols int, data []T) error {
	var z T
	descr, size := "<f8", 8
	if _, ok := any(z).(float32); ok {
		descr, size = "<f4", 4
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }", descr, rows, cols)
	for (10+len(h)+1)%64 != 0 {
		h += " "
	}
	h += "\n"
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("\x93NUMPY\x01\x00")
	binary.Write(w, binary.LittleEndian, uint16(len(h)))
	w.WriteString(h)
	buf := make([]byte, size)
	for _, v := range data {
		if size == 4 {
			binary.LittleEndian.PutUint32(buf, math.Float32bits(float32(v)))
		} else {
			binary.LittleEndian.PutUint64(buf, math.Float64bits(float64(v)))
		}
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
