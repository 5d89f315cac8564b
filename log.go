package lowrank

import (
	"log/slog"
	"sync/atomic"
)

var customLogger atomic.Pointer[slog.Logger]

// SetLogger sets where lowrank reports decisions a caller may want to know
// about, such as a fallback from the GPU to the CPU. By default it uses
// slog.Default(); nil restores that.
func SetLogger(l *slog.Logger) { customLogger.Store(l) }

func logger() *slog.Logger {
	if l := customLogger.Load(); l != nil {
		return l
	}
	return slog.Default()
}
