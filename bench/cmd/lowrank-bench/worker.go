package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// worker is the Python reference process (bench/ref.py).
type worker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startWorker(python, script string) (*worker, error) {
	cmd := exec.Command(python, script)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", python, script, err)
	}
	return &worker{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}, nil
}

// call sends one request and decodes the answer into resp.
func (w *worker) call(req map[string]any, resp any) error {
	b, _ := json.Marshal(req)
	if _, err := w.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("reference worker: %w", err)
	}
	line, err := w.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reference worker died during %v: %w", req["cmd"], err)
	}
	var st struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(line, &st); err != nil {
		return fmt.Errorf("reference worker: bad answer %q", line)
	}
	if !st.OK {
		return fmt.Errorf("reference worker: %v: %s", req["cmd"], st.Error)
	}
	if resp != nil {
		return json.Unmarshal(line, resp)
	}
	return nil
}

func (w *worker) close() {
	w.call(map[string]any{"cmd": "quit"}, nil)
	w.in.Close()
	w.cmd.Wait()
}
