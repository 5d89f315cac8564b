// Package osfile holds the few file-system primitives the safetensors
// package and the command share: opening an input that must be a regular
// file without ever blocking on it, short temporary names beside an
// output, and syncing a folder.
package osfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// ErrNotRegular is wrapped by OpenRegular's error for a path that exists but
// is not a regular file (a folder, FIFO, device or socket).
var ErrNotRegular = errors.New("not a regular file")

// OpenRegular opens path for reading and returns it with its FileInfo when
// it is a regular file (symbolic links are followed). A FIFO, device,
// socket or folder is refused with an error wrapping ErrNotRegular that
// names what it is, without blocking: the open itself does not wait for a
// FIFO's writer (O_NONBLOCK where the system has it, a stat first
// elsewhere) and nothing is read before the check.
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	f, err := openNonblock(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: it is %s", ErrNotRegular, Kind(st.Mode()))}
	}
	if err := clearNonblock(f); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// Kind names the type of file a mode describes, for messages: "a regular
// file", "a folder", "a FIFO", "a character device", ….
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a folder"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}

// maxTempBase is the most bytes of an output's name kept in its temporary
// name, so that ".NAME.tmp-RANDOM(.old)" stays within NAME_MAX (255 bytes)
// for any legal NAME.
const maxTempBase = 100

// TempPattern returns the os.CreateTemp / os.MkdirTemp pattern for a
// temporary file or folder beside the output path: ".NAME.tmp-*", with NAME
// cut to at most 100 bytes (at a character boundary) so that the temporary
// name is legal whenever NAME is.
func TempPattern(path string) string {
	base := filepath.Base(path)
	if len(base) > maxTempBase {
		cut := maxTempBase
		for cut > 0 && !utf8.RuneStart(base[cut]) {
			cut--
		}
		base = base[:cut]
	}
	return "." + base + ".tmp-*"
}

// SyncDir flushes a folder's entries to disk (best effort), so that a
// rename into it survives a crash.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
