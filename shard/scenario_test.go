package shard

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output in testdata/*.txt")

// TestScenarios runs the planning scripts in testdata. Each file is a
// sequence of blocks:
//
//	# comment
//	command key=value ...
//	----
//	expected output
//	(blank line)
//
// Commands:
//
//	model layers=N layer-bytes=SIZE [kv-bytes=SIZE] [fixed=SIZE] [name=S]
//	worker id=S speed=F mem=SIZE [addr=S]  add or replace a worker
//	kill id=S                         remove a worker
//	plan [stable] [min-workers=N] [tolerance=F]
//
// "plan" prints the explanation and the stages of a new plan (or the
// error) and, when it succeeds, makes it the plan in force; "stable" passes
// the plan in force as PlanOptions.PreferStable. SIZE accepts B, KB, MB,
// GB (decimal) and KiB, MiB, GiB. Run with -rewrite to regenerate the
// expected output, then review the diff.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			runScenario(t, path)
		})
	}
}

type scenario struct {
	model   ModelSize
	name    string
	workers map[string]WorkerInfo
	current *Plan
}

func runScenario(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	sc := &scenario{workers: map[string]WorkerInfo{}}
	var out strings.Builder
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			continue
		}
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: command %q is not followed by ----", path, i+1, line)
		}
		cmdLine := i + 1
		i += 2
		var want []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		got := sc.run(t, fmt.Sprintf("%s:%d", path, cmdLine), line)
		fmt.Fprintf(&out, "%s\n----\n%s\n", line, got)
		if i < len(lines) {
			out.WriteString("\n")
		}
		if !*rewrite && got != strings.Join(want, "\n") {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", path, cmdLine, line, got, strings.Join(want, "\n"))
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (sc *scenario) run(t *testing.T, where, line string) string {
	fields := strings.Fields(line)
	args := map[string]string{}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		args[k] = v
	}
	size := func(k string) uint64 {
		if args[k] == "" {
			return 0
		}
		n, err := parseBytes(args[k])
		if err != nil {
			t.Fatalf("%s: %s: %v", where, k, err)
		}
		return n
	}
	num := func(k string) float64 {
		if args[k] == "" {
			return 0
		}
		f, err := strconv.ParseFloat(args[k], 64)
		if err != nil {
			t.Fatalf("%s: %s: %v", where, k, err)
		}
		return f
	}
	switch fields[0] {
	case "model":
		sc.model = ModelSize{NumLayers: int(num("layers")), LayerBytes: size("layer-bytes"),
			KVBytesPerLayer: size("kv-bytes"), FixedBytes: size("fixed")}
		sc.name = args["name"]
		return "ok"
	case "worker":
		id, addr := args["id"], args["addr"]
		if addr == "" {
			addr = id + ":7070"
		}
		sc.workers[id] = WorkerInfo{ID: id, Address: addr, Speed: num("speed"),
			MemoryFree: size("mem"), MemoryTotal: size("mem")}
		return "ok"
	case "kill":
		delete(sc.workers, args["id"])
		return "ok"
	case "plan":
		var workers []WorkerInfo
		for _, w := range sc.workers {
			workers = append(workers, w)
		}
		// Map order must not matter to the planner.
		sort.Slice(workers, func(i, j int) bool { return workers[i].ID > workers[j].ID })
		opts := PlanOptions{MinWorkers: int(num("min-workers")), StableTolerance: num("tolerance"),
			Model: sc.name, Now: time.Unix(0, 0)}
		if _, ok := args["stable"]; ok {
			opts.PreferStable = sc.current
		}
		p, err := MakePlan(sc.model, workers, opts)
		if err != nil {
			return "error: " + err.Error()
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("%s: invalid plan: %v", where, err)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "epoch %d:", p.Epoch)
		for _, s := range p.Stages {
			fmt.Fprintf(&b, " %s[%d,%d)", s.WorkerID, s.Start, s.End)
			if s.Address != s.WorkerID+":7070" {
				fmt.Fprintf(&b, "@%s", s.Address)
			}
		}
		if sc.current != nil {
			fmt.Fprintf(&b, " (%d layers to load)", MovedLayers(*sc.current, p))
		}
		sc.current = &p
		b.WriteString("\n" + p.Explanation)
		return b.String()
	}
	t.Fatalf("%s: unknown command %q", where, fields[0])
	return ""
}

func parseBytes(s string) (uint64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return uint64(f * mult), nil
}
