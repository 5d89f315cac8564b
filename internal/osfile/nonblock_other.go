//go:build !unix

package osfile

import (
	"fmt"
	"io/fs"
	"os"
)

// openNonblock stats path first and opens it only when it is a regular
// file (no O_NONBLOCK here).
func openNonblock(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: it is %s", ErrNotRegular, Kind(st.Mode()))}
	}
	return os.Open(path)
}

func clearNonblock(*os.File) error { return nil }
