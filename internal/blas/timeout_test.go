package blas

import (
	"os"
	"testing"
)

// TestChooseThreadTimeout checks that Load's OPENBLAS_THREAD_TIMEOUT is
// set only when ThreadTimeout asks for it and the user set neither it nor
// GOTO_THREAD_TIMEOUT.
func TestChooseThreadTimeout(t *testing.T) {
	defer func(v string) { ThreadTimeout = v }(ThreadTimeout)
	ThreadTimeout = ""
	for _, v := range []string{ThreadTimeoutEnv, "GOTO_THREAD_TIMEOUT"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	if got := chooseThreadTimeout(); got != "" || os.Getenv(ThreadTimeoutEnv) != "" {
		t.Errorf("the library's default: chooseThreadTimeout() = %q; want nothing set", got)
	}
	ThreadTimeout = IdleThreadTimeout
	const threadTimeout = IdleThreadTimeout
	for _, c := range []struct {
		name, preset, value string
		want                string
	}{
		{name: "unset", want: threadTimeout},
		{name: "user's OPENBLAS_THREAD_TIMEOUT", preset: ThreadTimeoutEnv, value: "26"},
		{name: "user's GOTO_THREAD_TIMEOUT", preset: "GOTO_THREAD_TIMEOUT", value: "12"},
		{name: "user's empty value", preset: ThreadTimeoutEnv, value: ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range []string{ThreadTimeoutEnv, "GOTO_THREAD_TIMEOUT"} {
				t.Setenv(v, "") // restored after the test
				os.Unsetenv(v)
			}
			if c.preset != "" {
				os.Setenv(c.preset, c.value)
			}
			if got := chooseThreadTimeout(); got != c.want {
				t.Errorf("chooseThreadTimeout() = %q; want %q", got, c.want)
			}
			got, set := os.LookupEnv(ThreadTimeoutEnv)
			switch {
			case c.preset == "" && got != threadTimeout:
				t.Errorf("%s = %q; want %q", ThreadTimeoutEnv, got, threadTimeout)
			case c.preset == ThreadTimeoutEnv && got != c.value:
				t.Errorf("%s = %q; want the user's %q", ThreadTimeoutEnv, got, c.value)
			case c.preset == "GOTO_THREAD_TIMEOUT" && set:
				t.Errorf("%s = %q set beside the user's GOTO_THREAD_TIMEOUT", ThreadTimeoutEnv, got)
			}
		})
	}
}
