package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// snapshot returns every file under dir with its content, to check that a
// refused command touched nothing.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "link:" + l
		case info.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			out[rel] = string(b)
		default:
			out[rel] = info.Mode().String()
		}
		return nil
	})
	return out
}

func sameSnapshot(t *testing.T, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if w, ok := after[k]; !ok {
			t.Errorf("%s was removed", k)
		} else if w != v {
			t.Errorf("%s was changed", k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s was created", k)
		}
	}
}

// Issue 9, point 1: extract -o DIR --force emptied any folder, and
// -o "$PWD" --force deleted the current folder with the inputs in it.
// --force now replaces only a folder written by extract.
func TestForceNeverEmptiesAFolder(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, "F32")
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("my model card"), 0o644)
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "README.md"), []byte("keep me"), 0o644)
	os.Mkdir(filepath.Join(other, "sub"), 0o755)
	os.WriteFile(filepath.Join(other, "sub", peftConfigName), []byte("{}"), 0o644)
	t.Chdir(dir)
	before, beforeOther := snapshot(t, dir), snapshot(t, other)
	for _, c := range []struct {
		out   string
		wants []string
	}{
		{dir, []string{"contains", "base.safetensors", "expected an output path apart from every input"}},
		{".", []string{"reference to a folder", "expected a new name"}},
		{"..", []string{"reference to a folder"}},
		{other, []string{`holds "README.md"`, "--force replaces only a folder holding nothing but"}},
	} {
		assertFails(t, dir, nil, []string{"extract", "--base", p.base, "--tuned", p.tuned, "-o", c.out, "--force", "--quiet", "--rank", "2"}, c.wants...)
		assertFails(t, dir, nil, []string{"extract", "--base", p.base, "--tuned", p.tuned, "-o", c.out, "--force", "--quiet", "--rank", "2", "--format", "kohya"}, "lowrank: ")
	}
	sameSnapshot(t, before, snapshot(t, dir))
	sameSnapshot(t, beforeOther, snapshot(t, other))
	// The same folder rules for factorize and merge outputs: a folder is
	// never replaced by a file.
	for _, args := range [][]string{
		{"factorize", p.base, "-o", other, "--force", "--quiet", "--rank", "2"},
		{"merge", p.base, "-o", other, "--force", "--quiet"},
		{"factorize", p.base, "-o", dir, "--force", "--quiet", "--rank", "2"},
	} {
		assertFails(t, dir, nil, args, "lowrank: ")
	}
	sameSnapshot(t, before, snapshot(t, dir))
	sameSnapshot(t, beforeOther, snapshot(t, other))
}

// Issue 9, point 2: --force replaced what was not a previous output: the
// report over the model or the input, a character device, a symbolic link
// to /dev/null (followed).
func TestForceReplacesOnlyPreviousOutputs(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, "F32")
	out := filepath.Join(dir, "out.safetensors")
	mustCLI(t, "factorize", p.base, "-o", out, "--rank", "2", "--quiet")
	linkToNull := filepath.Join(dir, "null.safetensors")
	os.Symlink("/dev/null", linkToNull)
	linkDir := filepath.Join(t.TempDir(), "via")
	os.Symlink(dir, linkDir)
	hard := filepath.Join(dir, "hard.safetensors")
	if err := os.Link(p.base, hard); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "r.json")
	os.WriteFile(report, []byte("{}"), 0o644)
	jsonOut := filepath.Join(dir, "out.json") // -o accepts any name
	mustCLI(t, "factorize", p.base, "-o", jsonOut, "--rank", "2", "--quiet")
	jsonIn := filepath.Join(dir, "in.json")
	b, _ := os.ReadFile(p.base)
	os.WriteFile(jsonIn, b, 0o644)
	nullJSON := filepath.Join(dir, "null.json")
	os.Symlink("/dev/null", nullJSON)
	adapter := filepath.Join(dir, "ad")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", adapter, "--rank", "2", "--quiet")
	before := snapshot(t, dir)
	for _, c := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"factorize", p.base, "-o", jsonOut, "--report", jsonOut}, []string{"the report is the output", jsonOut}},
		{[]string{"factorize", jsonIn, "-o", out, "--report", jsonIn}, []string{"the report is " + jsonIn}},
		{[]string{"factorize", p.base, "-o", p.base}, []string{"the output is " + p.base}},
		{[]string{"factorize", p.base, "-o", hard}, []string{"the output is (the same file as) " + p.base}},
		{[]string{"factorize", p.base, "-o", filepath.Join(linkDir, "base.safetensors")}, []string{"the output is " + p.base}},
		{[]string{"factorize", p.base, "-o", "/dev/null"}, []string{"/dev/null: the output is a character device", "--force replaces nothing else"}},
		{[]string{"factorize", p.base, "-o", linkToNull}, []string{"symbolic link to a character device"}},
		{[]string{"factorize", p.base, "-o", out, "--report", nullJSON}, []string{"the report is a symbolic link to a character device"}},
		{[]string{"merge", "--base", p.base, "--adapter", adapter, "-o", filepath.Join(adapter, peftWeightsName)}, []string{"the output is inside " + adapter}},
		{[]string{"merge", "--base", p.base, "--adapter", adapter, "-o", filepath.Join(adapter, "new.safetensors")}, []string{"is inside " + adapter}},
		{[]string{"extract", "--base", p.base, "--tuned", p.tuned, "-o", adapter, "--report", filepath.Join(adapter, "r.json")}, []string{"the report is inside the output folder"}},
	} {
		args := append(c.args, "--force", "--quiet")
		if c.args[0] != "merge" {
			args = append(args, "--rank", "2")
		}
		assertFails(t, dir, nil, args, c.wants...)
	}
	sameSnapshot(t, before, snapshot(t, dir))
	if st, err := os.Stat("/dev/null"); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a device: %v", err)
	}
	// A symbolic link to a previous output is replaced as a link: the file
	// it pointed to is untouched.
	prev := filepath.Join(dir, "prev.safetensors")
	os.WriteFile(prev, []byte("previous"), 0o644)
	link := filepath.Join(dir, "link.safetensors")
	os.Symlink(prev, link)
	mustCLI(t, "factorize", p.base, "-o", link, "--rank", "2", "--quiet", "--force")
	if b, _ := os.ReadFile(prev); !bytes.Equal(b, []byte("previous")) {
		t.Errorf("the link's target was written through")
	}
	if st, _ := os.Lstat(link); !st.Mode().IsRegular() {
		t.Errorf("the link was not replaced by the output")
	}
}

// A model folder of many shards (99999 is the most the names allow) has a
// manifest of well over 64 KiB: it must read back, or --force refused
// lowrank's own output ("holds .lowrank-manifest.json, which lowrank does
// not write") and join did not see that the folder was joined.
func TestManifestOfManyShardsReadsBack(t *testing.T) {
	dir := t.TempDir()
	const n = 3000
	var names []string
	for i := range n {
		name := safetensors.ShardName("model", i+1, n)
		names = append(names, name)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	all := append(append([]string{}, names...), manifestName)
	mj := modelManifestJSON("factorize", all, &modelInfo{Shards: names})
	if len(mj) <= 64<<10 {
		t.Fatalf("manifest of %d bytes; the test wants one over 64 KiB", len(mj))
	}
	if err := os.WriteFile(filepath.Join(dir, manifestName), mj, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := inspectFolder(dir, "factorize")
	if err != nil {
		t.Fatalf("inspectFolder of a %d-shard model folder lowrank wrote: %v", n, err)
	}
	if len(st.final) != n+1 || st.previous != "factorize" {
		t.Errorf("inspectFolder: %d files of a previous output (command %q); expected %d (factorize)", len(st.final), st.previous, n+1)
	}
}

// -o - wrote a file named "-" in the current folder, rc 0, where a user
// expects standard output (--report - was already refused); outputs are written whole to a
// temporary and renamed, so "-" is refused, naming ./- for a file of that
// name.
func TestDashIsNotStandardOutput(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, "F32")
	t.Chdir(dir)
	for _, args := range [][]string{
		{"factorize", p.base, "-o", "-", "--rank", "2", "--quiet"},
		{"merge", p.base, "-o", "-", "--quiet"},
		{"extract", "--base", p.base, "--tuned", p.tuned, "-o", "-", "--rank", "2", "--quiet"},
		{"extract", "--base", p.base, "--tuned", p.tuned, "-o", "-", "--format", "kohya", "--rank", "2", "--quiet"},
	} {
		assertFails(t, dir, nil, args, "standard output", "./-")
	}
	// ./- is a file of that name.
	mustCLI(t, "factorize", p.base, "-o", "./-", "--rank", "2", "--quiet")
	if _, err := os.Stat(filepath.Join(dir, "-")); err != nil {
		t.Fatal(err)
	}
}
