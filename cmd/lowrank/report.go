package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
)

// row is one tensor's line in the table and the report.
type row struct {
	Name   string `json:"name"`
	Shape  []int  `json:"shape"`
	DType  string `json:"dtype"`
	Status string `json:"status"`
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

// printTable writes the per-tensor table and the totals.
func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cal := false // factorize --calibration: two more columns
	for _, r := range rows {
		cal = cal || r.Calibration != ""
	}
	if cal {
		fmt.Fprintln(tw, "tensor\tshape\trank\trel.err\tout.err\tenergy\tparams before → after\tsaved\tstatus\tcalibration")
	} else {
		fmt.Fprintln(tw, "tensor\tshape\trank\trel.err\tenergy\tparams before → after\tsaved\tstatus")
	}
	hidden := 0
	for _, r := range rows {
		if !r.listed {
			hidden++
			continue
		}
		rank, rel, en := "-", "-", "-"
		if r.Rank > 0 {
			rank = strconv.Itoa(r.Rank)
		}
		if r.RelError != nil {
			rel = fmt.Sprintf("%.2e", *r.RelError)
		}
		if r.Energy != nil {
			en = fmt.Sprintf("%.4f", *r.Energy)
		}
		if cal {
			out := "-"
			if r.OutputRelError != nil {
				out = fmt.Sprintf("%.2e", *r.OutputRelError)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d → %d\t%s\t%s\t%s\n", esc(r.Name), shapeString(r.Shape), rank, rel, out, en, r.ParamsBefore, r.ParamsAfter, humanBytes(r.BytesSaved), esc(r.Status), r.Calibration)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d → %d\t%s\t%s\n", esc(r.Name), shapeString(r.Shape), rank, rel, en, r.ParamsBefore, r.ParamsAfter, humanBytes(r.BytesSaved), esc(r.Status))
	}
	tw.Flush()
	t := sumRows(rows)
	var parts []string
	for _, k := range []string{stFactorized, stAdapter, stMerged, stDense, stSkipped, stCopied} {
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

// writeReport writes the report as JSON or CSV (by the extension of the
// output's path) and commits it.
func writeReport(out *output, rep reportFile) error {
	path := out.path
	rep.Totals = sumRows(rep.Tensors)
	var buf bytes.Buffer
	if strings.EqualFold(filepath.Ext(path), ".csv") {
		cw := csv.NewWriter(&buf)
		cw.Write([]string{"name", "shape", "dtype", "status", "rank", "rel_error", "energy", "params_before", "params_after", "bytes_before", "bytes_after", "bytes_saved", "calibration", "output_rel_error"})
		opt := func(p *float64) string {
			if p == nil {
				return ""
			}
			return strconv.FormatFloat(*p, 'g', 6, 64)
		}
		all := append(append([]row(nil), rep.Tensors...), row{Name: "TOTAL", Status: "total",
			ParamsBefore: rep.Totals.ParamsBefore, ParamsAfter: rep.Totals.ParamsAfter,
			BytesBefore: rep.Totals.BytesBefore, BytesAfter: rep.Totals.BytesAfter, BytesSaved: rep.Totals.BytesSaved})
		for _, r := range all {
			rank := ""
			if r.Rank > 0 {
				rank = strconv.Itoa(r.Rank)
			}
			// Text from the input files is protected against formula
			// injection; the numbers are ours.
			cw.Write([]string{csvCell(r.Name), shapeString(r.Shape), csvCell(r.DType), csvCell(r.Status), rank, opt(r.RelError), opt(r.Energy),
				strconv.FormatInt(r.ParamsBefore, 10), strconv.FormatInt(r.ParamsAfter, 10),
				strconv.FormatInt(r.BytesBefore, 10), strconv.FormatInt(r.BytesAfter, 10), strconv.FormatInt(r.BytesSaved, 10),
				r.Calibration, opt(r.OutputRelError)})
		}
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

// progress is a bar on stderr when it is a terminal, else nothing.
type progress struct{ bar *progressbar.ProgressBar }

func newProgress(stderr io.Writer, quiet bool, total int, what string) *progress {
	f, ok := stderr.(*os.File)
	if quiet || !ok || total == 0 || !(isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)}
}

func (p *progress) step(name string) {
	if p.bar == nil {
		return
	}
	name = esc(name)
	if r := []rune(name); len(r) > 40 {
		name = "…" + string(r[len(r)-39:])
	}
	p.bar.Describe(name)
	p.bar.Add(1)
}

func (p *progress) done() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar.Clear()
	}
}
