// Command serve answers forward requests for a factorized (or dense)
// model and LoRA adapters applied unmerged, chosen per request:
//
//	go run ./examples/serve -model small.safetensors -adapter chat=my-adapter -addr :8080
//	curl -s localhost:8080/forward -d '{"module":"blocks.0.fc","input":[1,2,3],"adapter":"chat"}'
//	{"output":[...]}
//
// POST /forward takes {"module", "input" (one vector) or "inputs" (one
// per row), "adapter" (optional)} and answers {"output"} or {"outputs"};
// GET /modules lists the modules and adapters. Errors are {"error":
// "lowrank: ..."} with 400 (bad input), 404 (no such module or adapter)
// or 500. Requests are served concurrently: layers are loaded once, on
// their first request, and shared.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"
)

// adapterFlags collects -adapter NAME=PATH.
type adapterFlags map[string]string

func (a adapterFlags) String() string { return fmt.Sprint(map[string]string(a)) }

func (a adapterFlags) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("%q; expected NAME=PATH", v)
	}
	if _, dup := a[name]; dup {
		return fmt.Errorf("adapter %q given twice", name)
	}
	a[name] = path
	return nil
}

func main() {
	modelPath := flag.String("model", "", "the model (`FILE`.safetensors, dense or written by lowrank factorize)")
	addr := flag.String("addr", "localhost:8080", "listen `ADDRESS`")
	adapters := adapterFlags{}
	flag.Var(adapters, "adapter", "an adapter to serve, `NAME=PATH` (a PEFT folder or a kohya file); repeatable")
	flag.Parse()
	if *modelPath == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: serve -model FILE.safetensors [-adapter NAME=PATH]... [-addr ADDRESS]")
		os.Exit(2)
	}
	s, err := NewServer(*modelPath, adapters)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	srv := &http.Server{Addr: *addr, Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("serving %s with %d adapters on %s", *modelPath, len(adapters), *addr)
	log.Fatal(srv.ListenAndServe())
}
