package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
)

// row is one tensor's line in the table and the report.
type row struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
	// DType is the dtype written for the tensor ("" when nothing is
	// written for it), SourceDType the input's.
	DType       string `json:"dtype"`
	SourceDType string `json:"source_dtype"`
	Status      string `json:"status"`
	// Rank, RelError and Energy are set for factorized tensors and
	// adapter modules.
	Rank     int      `json:"rank,omitempty"`
	RelError *float64 `json:"rel_error,omitempty"`
	Energy   *float64 `json:"energy,omitempty"`
	Scaling  *float64 `json:"scaling,omitempty"`
	Method   string   `json:"method,omitempty"`
	// Calibration is set with factorize --calibration: "calibrated" or
	// "plain (no statistics)"; OutputRelError for calibrated tensors.
	Calibration    string   `json:"calibration,omitempty"`
	OutputRelError *float64 `json:"output_rel_error,omitempty"`
	Backend        string   `json:"backend,omitempty"`
	// Parameters and bytes before (the dense tensor) and after (what was
	// written for it).
	ParamsBefore int64 `json:"params_before"`
	ParamsAfter  int64 `json:"params_after"`
	BytesBefore  int64 `json:"bytes_before"`
	BytesAfter   int64 `json:"bytes_after"`
	BytesSaved   int64 `json:"bytes_saved"`
	// Memory is the memory the tensor's work was estimated to need (set
	// when a budget or --dry-run asked for the estimate).
	Memory int64 `json:"memory,omitempty"`
	// listed: shown in the table (tensors the command worked on).
	listed bool
}

// Statuses.
const (
	stFactorized = "factorized"
	stDense      = "dense"
	stCopied     = "copied"
	stAdapter    = "adapter"
	stSkipped    = "skipped"
	stMerged     = "merged"
)

func f64p(v float64) *float64 { return &v }

func shapeString(s []int) string {
	if s == nil {
		return ""
	}
	if len(s) == 0 {
		return "scalar"
	}
	p := make([]string, len(s))
	for i, d := range s {
		p[i] = strconv.Itoa(d)
	}
	return strings.Join(p, "×")
}

// humanBytes prints a byte count for tables and messages ("1.5 GiB",
// "-3.0 KiB", "512 B").
func humanBytes(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprintf("%d B", n)
	for i, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if n >= 1<<(10*(i+1)) {
			s = fmt.Sprintf("%.1f %s", float64(n)/float64(int64(1)<<(10*(i+1))), u)
		}
	}
	if neg {
		return "-" + s
	}
	return s
}

// totals sums the rows.
type totals struct {
	ByStatus     map[string]int `json:"by_status"`
	ParamsBefore int64          `json:"params_before"`
	ParamsAfter  int64          `json:"params_after"`
	BytesBefore  int64          `json:"bytes_before"`
	BytesAfter   int64          `json:"bytes_after"`
	BytesSaved   int64          `json:"bytes_saved"`
}

func sumRows(rows []row) totals {
	t := totals{ByStatus: map[string]int{}}
	for _, r := range rows {
		key, _, _ := strings.Cut(r.Status, ":")
		t.ByStatus[key]++
		t.ParamsBefore += r.ParamsBefore
		t.ParamsAfter += r.ParamsAfter
		t.BytesBefore += r.BytesBefore
		t.BytesAfter += r.BytesAfter
		t.BytesSaved += r.BytesSaved
	}
	return t
}

// printTable writes the per-tensor table and the totals of a report.
func printTable(w io.Writer, rep reportFile) {
	rows := rep.Tensors
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cal := false // factorize --calibration: two more columns
	for _, r := range rows {
		cal = cal || r.Calibration != ""
	}
	dry := strings.HasSuffix(rep.Command, "--dry-run") // a memory column
	if dry {
		fmt.Fprintln(w, "dry run: nothing written. rank and rel.err come from the real SVD of each tensor (the run's own computation); memory is the estimate --max-memory plans with")
	}
	head := []string{"tensor", "shape", "dtype", "rank", "rel.err"}
	if cal {
		head = append(head, "out.err")
	}
	head = append(head, "energy", "params before → after", "saved")
	if dry {
		head = append(head, "memory")
	}
	head = append(head, "status")
	if cal {
		head = append(head, "calibration")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	hidden := 0
	for _, r := range rows {
		if !r.listed {
			hidden++
			continue
		}
		rank, rel, en, out := "-", "-", "-", "-"
		if r.Rank > 0 {
			rank = strconv.Itoa(r.Rank)
		}
		if r.RelError != nil {
			rel = fmt.Sprintf("%.2e", *r.RelError)
		}
		if r.Energy != nil {
			en = fmt.Sprintf("%.4f", *r.Energy)
		}
		if r.OutputRelError != nil {
			out = fmt.Sprintf("%.2e", *r.OutputRelError)
		}
		dt := esc(r.DType)
		switch {
		case r.DType == "":
			dt = "-"
		case r.SourceDType != "" && r.SourceDType != r.DType:
			dt = esc(r.SourceDType) + "→" + esc(r.DType)
		}
		params := fmt.Sprintf("%d → %d", r.ParamsBefore, r.ParamsAfter)
		if r.ParamsBefore == 0 && r.ParamsAfter == 0 {
			params = "-"
		}
		cells := []string{esc(r.Name), shapeString(r.Shape), dt, rank, rel}
		if cal {
			cells = append(cells, out)
		}
		cells = append(cells, en, params, humanBytes(r.BytesSaved))
		if dry {
			m := "-"
			if r.Memory > 0 {
				m = humanBytes(r.Memory)
			}
			cells = append(cells, m)
		}
		cells = append(cells, esc(r.Status))
		if cal {
			cells = append(cells, r.Calibration)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
	t := sumRows(rows)
	var parts []string
	for _, k := range []string{stFactorized, stAdapter, stMerged, stDense, stSkipped, stCopied, stBias} {
		if n := t.ByStatus[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	pct := 100.0
	if t.ParamsBefore > 0 {
		pct = 100 * float64(t.ParamsAfter) / float64(t.ParamsBefore)
	}
	fmt.Fprintf(w, "total: %s; params %d → %d (%.1f%%); bytes %s → %s, saved %s\n",
		strings.Join(parts, ", "), t.ParamsBefore, t.ParamsAfter, pct, humanBytes(t.BytesBefore), humanBytes(t.BytesAfter), humanBytes(t.BytesSaved))
	if rep.Command == "extract" {
		fmt.Fprintln(w, "(before: the changed tensors as dense ΔW; after: the adapter's factors for them)")
	}
	if dry {
		var peak int64
		name := ""
		for _, r := range rows {
			if r.Memory > peak {
				peak, name = r.Memory, r.Name
			}
		}
		if peak > 0 {
			fmt.Fprintf(w, "memory: at most %s for one tensor (%s); --jobs N holds up to N tensors' at once, within --max-memory\n", humanBytes(peak), esc(name))
		}
	}
	if hidden > 0 {
		fmt.Fprintf(w, "(%d more tensors, copied or unchanged, not listed)\n", hidden)
	}
}

// reportFile is the JSON report.
type reportFile struct {
	Command string   `json:"command"`
	Inputs  []string `json:"inputs"`
	Output  string   `json:"output"`
	Policy  string   `json:"policy,omitempty"`
	Tensors []row    `json:"tensors"`
	Totals  totals   `json:"totals"`
}

// csvColumns are the CSV report's columns: the JSON names of row's
// fields, in their order (one row type, serialised both ways).
func csvColumns() []string {
	rt := reflect.TypeFor[row]()
	var cols []string
	for i := range rt.NumField() {
		if name, ok := jsonName(rt.Field(i)); ok {
			cols = append(cols, name)
		}
	}
	return cols
}

// jsonName returns the JSON name of an exported struct field.
func jsonName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" {
		return "", false
	}
	if name == "" {
		name = f.Name
	}
	return name, true
}

// csvCells returns r's cells in csvColumns' order: empty where the JSON
// report omits the field, numbers as JSON writes them (shortest exact
// form), shapes as d×k, text from the input files protected against
// formula injection (csvCell).
func csvCells(r row) []string {
	rv := reflect.ValueOf(r)
	rt := rv.Type()
	var cells []string
	for i := range rt.NumField() {
		f := rt.Field(i)
		if _, ok := jsonName(f); !ok {
			continue
		}
		v := rv.Field(i)
		omit := strings.Contains(f.Tag.Get("json"), ",omitempty") && v.IsZero()
		cell := ""
		switch {
		case omit:
		case v.Kind() == reflect.Pointer:
			if !v.IsNil() {
				cell = strconv.FormatFloat(v.Elem().Float(), 'g', -1, 64)
			}
		case v.Kind() == reflect.Slice:
			cell = shapeString(v.Interface().([]int))
		case v.Kind() == reflect.String:
			cell = csvCell(v.String())
		case v.CanInt():
			cell = strconv.FormatInt(v.Int(), 10)
		case v.Kind() == reflect.Float64:
			cell = strconv.FormatFloat(v.Float(), 'g', -1, 64)
		}
		cells = append(cells, cell)
	}
	return cells
}

// writeReport writes the report as JSON or CSV (by the extension of the
// output's path) and commits it.
func writeReport(out *output, rep reportFile) error {
	path := out.path
	rep.Totals = sumRows(rep.Tensors)
	var buf bytes.Buffer
	if strings.EqualFold(filepath.Ext(path), ".csv") {
		cw := csv.NewWriter(&buf)
		cw.Write(csvColumns())
		for _, r := range rep.Tensors {
			cw.Write(csvCells(r))
		}
		cw.Write(csvCells(row{Name: "TOTAL", Status: "total",
			ParamsBefore: rep.Totals.ParamsBefore, ParamsAfter: rep.Totals.ParamsAfter,
			BytesBefore: rep.Totals.BytesBefore, BytesAfter: rep.Totals.BytesAfter, BytesSaved: rep.Totals.BytesSaved}))
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
	} else {
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	if err := out.writeAll(buf.Bytes()); err != nil {
		return err
	}
	return out.commit()
}

// progressTo, when set (by tests), receives the progress bar whatever
// stderr is.
var progressTo io.Writer

// progressThrottle is the least time between two redraws of the bar
// (tests set 0 to see every step).
var progressThrottle = 100 * time.Millisecond

// progress is a bar on stderr when it is a terminal, else nothing. It
// counts the bytes of the tensors done (their size in the input), so its
// rate is in bytes per second and its ETA is the bytes left at the rate
// so far.
type progress struct{ bar *progressbar.ProgressBar }

func newProgress(stderr io.Writer, quiet bool, total int64, what string) *progress {
	w := progressTo
	if w == nil {
		f, ok := stderr.(*os.File)
		if !ok || !(isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
			return &progress{}
		}
		w = stderr
	}
	if quiet || total <= 0 {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(progressThrottle),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)}
}

// step records a tensor of n bytes done.
func (p *progress) step(name string, n int64) {
	if p.bar == nil {
		return
	}
	name = esc(name)
	if r := []rune(name); len(r) > 40 {
		name = "…" + string(r[len(r)-39:])
	}
	p.bar.Describe(name)
	p.bar.Add64(n)
}

func (p *progress) done() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar.Clear()
	}
}
