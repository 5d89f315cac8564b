package model_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/internal/testkit/hostile"
	"github.com/lowrank-go/lowrank/model"
)

var hostileDir = filepath.Join("..", "testdata", "hostile")

// libraryExpect is what the library says where its words differ from
// lowrank merge's for the same fault (the merge checks a base tensor the
// library checks as a layer), or where it has nothing to refuse (it does
// not merge, so a product that overflows the base's dtype is not
// computed).
var libraryExpect = map[string]string{
	"adapter-wrong-base-shape": `the adapter's B (6×2) · A (2×8) is 6×8 but the base's weight "fc1.weight" is 8×6`,
	"adapter-overflow":         hostile.OK,
}

// TestHostileSuite runs every case of the hostile suite through the
// library as a caller would: Open (and Linear and Forward of every layer)
// for files, OpenAdapterWith against the suite's base (and LoRA and
// ForwardAdapter of every module) for adapters. No panic; every error
// starts "lowrank: " and names the input; adapters succeed or fail as
// lowrank merge does, with its words; files whose header the reader
// refuses are refused with the reader's words, as lowrank info says them.
func TestHostileSuite(t *testing.T) {
	basePath := filepath.Join(hostileDir, hostile.BaseName)
	base, err := model.Open(basePath)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	for _, c := range hostile.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			dir := hostileDir
			if c.Big {
				if testing.Short() {
					t.Skip("-short: a case built at run time")
				}
				dir = t.TempDir()
				for name, b := range hostile.BuildBig(c) {
					p := filepath.Join(dir, name)
					os.MkdirAll(filepath.Dir(p), 0o755)
					if err := os.WriteFile(p, b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			in := filepath.Join(dir, c.Name)
			named := func(err error) {
				t.Helper()
				if msg := err.Error(); !strings.HasPrefix(msg, "lowrank: ") || !strings.Contains(msg, in) {
					t.Errorf("%q does not start with \"lowrank: \" or does not name %s", msg, in)
				}
			}
			if c.Kind == hostile.File {
				m, err := model.Open(in)
				if err != nil {
					named(err)
					if c.Info != hostile.OK && !strings.Contains(err.Error(), c.Info) {
						t.Errorf("Open: %q does not say %q", err, c.Info)
					}
					if c.Info == hostile.OK && !strings.Contains(err.Error(), c.Merge) {
						t.Errorf("Open refused what lowrank info reads, without lowrank merge's words %q: %v", c.Merge, err)
					}
					return
				}
				defer m.Close()
				if c.Info != hostile.OK {
					t.Errorf("Open accepted what lowrank info refuses (%q)", c.Info)
				}
				for _, name := range m.Names() {
					l, err := m.Linear(name)
					if err != nil {
						named(err)
						continue
					}
					d, k := l.Dims()
					if err := l.Forward(make([]float32, d), make([]float32, k)); err != nil {
						t.Errorf("Forward of %q: %v", name, err)
					}
				}
				return
			}
			ad, err := model.OpenAdapterWith(in, model.AdapterOptions{Base: base})
			want, ok := libraryExpect[c.Name]
			if !ok {
				want = c.Merge
			}
			if err == nil {
				defer ad.Close()
				for _, name := range ad.Names() {
					lr, lerr := ad.LoRA(name)
					if lerr != nil {
						err = lerr
						break
					}
					l, _ := base.Linear(name)
					d, k := l.Dims()
					if ferr := l.ForwardAdapter(make([]float32, d), make([]float32, k), lr); ferr != nil {
						t.Errorf("ForwardAdapter of %q: %v", name, ferr)
					}
				}
			}
			switch {
			case want == hostile.OK && err != nil:
				t.Errorf("refused what lowrank merge accepts: %v", err)
			case want != hostile.OK && err == nil:
				t.Errorf("accepted; lowrank merge says %q", want)
			case err != nil:
				named(err)
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%q does not say %q", err, want)
				}
				if errors.Is(err, model.ErrNeedBase) {
					t.Errorf("ErrNeedBase with a base given: %v", err)
				}
			}
		})
	}
}
