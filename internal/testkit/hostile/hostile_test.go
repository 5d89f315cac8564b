package hostile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The checked-in suite is exactly what the generator writes: run
// go generate ./internal/testkit/hostile after changing a case.
func TestCheckedInSuiteIsGenerated(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "testdata", "hostile")
	want := map[string][]byte{"README.md": Manifest()}
	for _, c := range Cases() {
		if c.Big {
			if BuildBig(c) == nil {
				t.Errorf("%s: big case with no builder", c.Name)
			}
			continue
		}
		if len(c.Files) == 0 && c.Name != "empty.safetensors" {
			t.Errorf("%s: no files", c.Name)
		}
		if c.Info == "" || c.Factorize == "" || c.Merge == "" || c.Attack == "" {
			t.Errorf("%s: missing attack or expectation", c.Name)
		}
		for name, b := range c.Files {
			want[filepath.FromSlash(name)] = b
		}
	}
	seen := 0
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		seen++
		b, ok := want[rel]
		if !ok {
			t.Errorf("%s is checked in but no case writes it", rel)
			return nil
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s differs from what the generator writes (run go generate ./internal/testkit/hostile)", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(want) {
		t.Errorf("%d files checked in, the generator writes %d (run go generate ./internal/testkit/hostile)", seen, len(want))
	}
}
