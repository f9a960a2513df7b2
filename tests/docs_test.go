package tests

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The shell examples of the README and the docs run as written, so that
// they cannot drift from the commands. Every ```sh block in these files
// carries a marker on the line before it:
//
//	<!-- test -->              run it, in order, in one shell per file
//	<!-- test: daemons -->     every command in it is a daemon: run it in the background
//	<!-- untested: REASON -->  not run (say why: needs network, Kubernetes…)
//
// A file's blocks run in one bash session (set -e) inside a private
// network, PID and mount namespace: the documented fixed ports (7070,
// 8080, 2379) are free there, 10.0.0.1–4 are local addresses standing for
// the machines of a multi-machine example, and every process ends with the
// session. README.md runs in the repository root (its blocks build bin/);
// docs/*.md run in a directory holding ./phi-2, a synthesized tiny model,
// with the binaries on PATH.
var documentedExamples = []string{"README.md", "docs/api.md", "docs/cluster.md"}

var exampleMarker = regexp.MustCompile(`^<!-- (test|test: daemons|untested: .+) -->$`)

type docBlock struct {
	line    int
	marker  string
	content []string
}

func docBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []docBlock
	var cur *docBlock
	prev := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.content = append(cur.content, line)
		case strings.TrimSpace(line) == "```sh":
			m := exampleMarker.FindStringSubmatch(strings.TrimSpace(prev))
			if m == nil {
				t.Errorf("%s:%d: a sh example without a marker (<!-- test -->, <!-- test: daemons --> or <!-- untested: why -->) on the line before", path, n)
				cur = &docBlock{line: n, marker: "untested"}
				break
			}
			cur = &docBlock{line: n, marker: m[1]}
		}
		prev = line
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// trailingComment is a shell comment after a command; "&" must go before it.
var trailingComment = regexp.MustCompile(`\s+#\s.*$`)

// docScript is the bash session of a file's tested blocks.
func docScript(blocks []docBlock, path string) (string, int) {
	var b strings.Builder
	b.WriteString("set -euo pipefail\n")
	b.WriteString("ip link set lo up\nfor i in 1 2 3 4; do ip addr add 10.0.0.$i/32 dev lo; done\n")
	// Daemons get Ctrl-C as from a terminal when the session ends, so that
	// they clean up; the PID namespace ends whatever is left.
	b.WriteString("trap 'kill -INT $(jobs -p) 2>/dev/null || true; wait || true' EXIT\n")
	tested := 0
	for _, bl := range blocks {
		if strings.HasPrefix(bl.marker, "untested") {
			continue
		}
		tested++
		fmt.Fprintf(&b, "echo '+++ %s:%d'\n", path, bl.line)
		if bl.marker == "test" {
			b.WriteString("set -x\n" + strings.Join(bl.content, "\n") + "\nset +x\n")
			continue
		}
		// Daemons: each command, continuation lines joined, in the background.
		var cmd strings.Builder
		for _, line := range bl.content {
			if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
				continue
			}
			cmd.WriteString(line + "\n")
			if strings.HasSuffix(line, "\\") {
				continue
			}
			c := strings.TrimRight(cmd.String(), "\n")
			fmt.Fprintf(&b, "set -x\n%s &\nset +x\n", trailingComment.ReplaceAllString(c, ""))
			cmd.Reset()
		}
	}
	return b.String(), tested
}

func TestDocsExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process clusters")
	}
	for _, tool := range []string{"unshare", "ip", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("the examples run in a private network namespace, which needs root")
	}
	binaries(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range documentedExamples {
		t.Run(strings.ReplaceAll(doc, "/", "_"), func(t *testing.T) {
			blocks := docBlocks(t, filepath.Join(root, doc))
			script, tested := docScript(blocks, doc)
			if tested == 0 {
				t.Fatalf("%s has no tested example", doc)
			}
			dir := root
			if doc != "README.md" {
				dir = t.TempDir()
				if out, err := exec.Command(bin.phalanx, "synth", "--out", filepath.Join(dir, "phi-2"), "--preset", "tiny", "--seed", "3").CombinedOutput(); err != nil {
					t.Fatalf("synth: %v\n%s", err, out)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "unshare", "--net", "--pid", "--mount", "--fork", "--mount-proc", "bash", "-c", script)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "PATH="+bin.dir+string(os.PathListSeparator)+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s's examples failed: %v\n%s", doc, err, out)
			}
			t.Logf("%s: %d examples ran\n%s", doc, tested, out)
		})
	}
}

// Every flag the daemons accept is in docs/cluster.md's tables.
func TestDaemonFlagsDocumented(t *testing.T) {
	binaries(t)
	doc, err := os.ReadFile("../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	for _, d := range []string{bin.coordinator, bin.worker} {
		out, _ := exec.Command(d, "-h").CombinedOutput()
		names := flagLine.FindAllStringSubmatch(string(out), -1)
		if len(names) < 10 {
			t.Fatalf("%s -h lists %d flags:\n%s", filepath.Base(d), len(names), out)
		}
		for _, m := range names {
			if !strings.Contains(string(doc), "`--"+m[1]) && !strings.Contains(string(doc), ", `--"+m[1]) {
				t.Errorf("docs/cluster.md does not document %s --%s", filepath.Base(d), m[1])
			}
		}
	}
}
