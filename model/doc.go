// Package model opens dense and factorized safetensors models and LoRA
// adapters as Go values, and applies their linear layers: the library
// calls behind the lowrank command's model commands.
//
//	m, err := model.Open("small.safetensors")    // headers only
//	fc, err := m.Linear("blocks.0.fc")            // reads blocks.0.fc.weight (or .weight.A/.B) and .bias
//	err = fc.Forward(y, x)                        // y = W·x + b, or B·(A·x) + b
//
// A Model maps module names to layers: the weight M.weight, dense or
// stored as the factors M.weight.A and M.weight.B that lowrank factorize
// writes, and the bias M.bias. The rank, relative error and energy the
// file records in its "lowrank" metadata are restored into each layer's
// lowrank.Factors, after a check against the tensors (metadata is a
// claim: a file whose metadata lies is refused, naming the tensor).
// Layers compute in float32 (Linear) or float64 (Linear64), on the GPU
// when one is usable (through lowrank.Factors and lowrank.Dense, resident
// on the device) and on the CPU otherwise.
//
// Adapters are applied without merging them, chosen per call, so that one
// base serves many adapters as LoRA serving systems (S-LoRA, punica,
// vLLM's multi-LoRA) do:
//
//	ad, err := model.OpenAdapter("my-adapter")          // PEFT folder (kohya: OpenAdapterWith and its base)
//	lora, err := ad.LoRA("blocks.0.fc")
//	err = fc.ForwardAdapter(y, x, lora)                 // y = W·x + b + scale·B·(A·x)
//	err = fc.ForwardBatchAdapters(Y, X, perRowAdapters) // one pass over the base, one per adapter
//
// Writer writes factorized models exactly as lowrank factorize does.
//
// # Concurrency
//
// Models, adapters and their layers are safe for concurrent use by many
// goroutines, except their Close methods: a server loads them once and
// calls Forward from every request. A layer is read from the file on its
// first use and kept; device memory is taken on its first Forward.
//
// # Hostile input
//
// Files and folders are read as lowrank's commands read them (see
// docs/hostile.md): headers validated strictly (safetensors), configs as
// strict JSON of at most 16 MiB, pattern keys matched in bounded time and
// memory (literal keys in a trie, regular expressions compiled lazily and
// charged to the Budget, at most 10⁷ regular-expression matches and 10⁸
// trie steps per adapter), kohya names mapped exactly. Every error starts
// with "lowrank: ", names the file and tensor, says what was expected,
// and wraps a sentinel of this package (ErrNotFound, ErrFormat, …).
package model
