package cliflag

import (
	"flag"
	"testing"
)

func TestEnvFallback(t *testing.T) {
	env := map[string]string{"PHALANX_MODEL": "/env", "PHALANX_MAX_TOKENS": "9", "PHALANX_THREADS": "x"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	model := fs.String("model", "", "")
	n := fs.Int("max-tokens", 1, "")
	if err := parse(fs, []string{}, lookup); err != nil {
		t.Fatal(err)
	}
	if *model != "/env" || *n != 9 {
		t.Errorf("env not applied: %q %d", *model, *n)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	model = fs.String("model", "", "")
	if err := parse(fs, []string{"--model", "/cli"}, lookup); err != nil || *model != "/cli" {
		t.Errorf("command line must win: %q %v", *model, err)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Int("threads", 0, "")
	if err := parse(fs, nil, lookup); err == nil {
		t.Error("a bad PHALANX_THREADS was accepted")
	}
}
