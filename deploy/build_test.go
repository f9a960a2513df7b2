package deploy

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// stampedVersion is what the tests stamp into the binaries.
const stampedVersion = "test-1.2.3"

const versionSymbol = "github.com/phalanx-llm/phalanx/internal/daemon.Version"

var commands = []string{"coordinator", "worker", "phalanx"}

// dockerfile is the parsed ../Dockerfile.
type dockerfile struct {
	args   map[string]string // global and stage ARG defaults
	stages []stage
}

type stage struct {
	from, platform, name string
	args                 []string // ARG names declared in the stage
	runs                 []string
	copies               []string
	user                 string
	labels               []string
}

// parseDockerfile reads the instructions of a Dockerfile, joining
// continuation lines and dropping comments. It knows the handful of
// instructions ours uses.
func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var cur strings.Builder
	for _, l := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	df := dockerfile{args: map[string]string{}}
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		var st *stage
		if len(df.stages) > 0 {
			st = &df.stages[len(df.stages)-1]
		}
		switch strings.ToUpper(instr) {
		case "ARG":
			name, def, hasDef := strings.Cut(rest, "=")
			if hasDef {
				df.args[name] = def
			}
			if st != nil {
				st.args = append(st.args, name)
			}
		case "FROM":
			var s stage
			f := strings.Fields(rest)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				if p, ok := strings.CutPrefix(f[0], "--platform="); ok {
					s.platform = p
				}
				f = f[1:]
			}
			if len(f) == 0 {
				t.Fatalf("Dockerfile: FROM without an image: %q", l)
			}
			s.from = os.Expand(f[0], func(k string) string { return df.args[k] })
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			df.stages = append(df.stages, s)
		case "RUN", "COPY", "USER", "LABEL":
			if st == nil {
				t.Fatalf("Dockerfile: %s before FROM", instr)
			}
			switch strings.ToUpper(instr) {
			case "RUN":
				st.runs = append(st.runs, rest)
			case "COPY":
				st.copies = append(st.copies, rest)
			case "USER":
				st.user = rest
			case "LABEL":
				st.labels = append(st.labels, rest)
			}
		}
	}
	return df
}

// shellWords splits a RUN line the way sh would for our simple commands:
// on blanks, with double and single quotes grouping.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				w.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// goBuild is the Dockerfile's `go build` command line.
type goBuild struct {
	env  map[string]string // VAR=value words before `go`
	args []string          // after `go build`
}

func dockerfileGoBuild(t *testing.T) (dockerfile, goBuild) {
	t.Helper()
	df := parseDockerfile(t, "../Dockerfile")
	var found []goBuild
	for _, st := range df.stages {
		for _, run := range st.runs {
			words := shellWords(run)
			for len(words) > 0 && strings.HasPrefix(words[0], "--") { // RUN --mount=…
				words = words[1:]
			}
			gb := goBuild{env: map[string]string{}}
			for len(words) > 0 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
				k, v, _ := strings.Cut(words[0], "=")
				gb.env[k] = v
				words = words[1:]
			}
			if len(words) >= 2 && words[0] == "go" && words[1] == "build" {
				gb.args = words[2:]
				found = append(found, gb)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("Dockerfile: want exactly one RUN … go build, found %d", len(found))
	}
	return df, found[0]
}

// expandBuild substitutes the build args into the Dockerfile's go build
// and points -o at dir.
func expandBuild(gb goBuild, goos, goarch, version, dir string) (env, args []string) {
	vars := map[string]string{"TARGETOS": goos, "TARGETARCH": goarch, "VERSION": version}
	expand := func(s string) string { return os.Expand(s, func(k string) string { return vars[k] }) }
	for k, v := range gb.env {
		env = append(env, k+"="+expand(v))
	}
	for i := 0; i < len(gb.args); i++ {
		a := gb.args[i]
		if a == "-o" && i+1 < len(gb.args) {
			args = append(args, "-o", dir+string(filepath.Separator))
			i++
			continue
		}
		args = append(args, expand(a))
	}
	return env, args
}

func TestDockerfile(t *testing.T) {
	df, gb := dockerfileGoBuild(t)
	if len(df.stages) != 2 {
		t.Fatalf("want a builder and a final stage, got %d stages", len(df.stages))
	}
	build, final := df.stages[0], df.stages[1]
	if !strings.HasPrefix(build.from, "golang:1.26") {
		t.Errorf("builder FROM %q, want golang:1.26", build.from)
	}
	if build.platform != "$BUILDPLATFORM" {
		t.Errorf("builder --platform=%q, want $BUILDPLATFORM (cross-compile natively, no emulation)", build.platform)
	}
	for _, a := range []string{"TARGETOS", "TARGETARCH", "VERSION"} {
		if !slices.Contains(build.args, a) {
			t.Errorf("builder stage does not declare ARG %s", a)
		}
	}
	if final.from != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final FROM %q, want gcr.io/distroless/static-debian12:nonroot", final.from)
	}
	if final.user != "65532:65532" && final.user != "65532" {
		t.Errorf("final USER %q, want 65532 (numeric, for runAsNonRoot)", final.user)
	}
	if len(final.labels) == 0 || !strings.Contains(strings.Join(final.labels, " "), "org.opencontainers.image.version") {
		t.Errorf("final stage has no OCI labels: %q", final.labels)
	}

	want := map[string]string{"CGO_ENABLED": "0", "GOOS": "$TARGETOS", "GOARCH": "$TARGETARCH"}
	for k, v := range want {
		if gb.env[k] != v {
			t.Errorf("go build runs with %s=%q, want %q", k, gb.env[k], v)
		}
	}
	if !slices.Contains(gb.args, "-trimpath") {
		t.Errorf("go build %q lacks -trimpath", gb.args)
	}
	i := slices.Index(gb.args, "-ldflags")
	if i < 0 || i+1 >= len(gb.args) {
		t.Fatalf("go build %q lacks -ldflags", gb.args)
	}
	ld := strings.Fields(gb.args[i+1])
	for _, f := range []string{"-s", "-w"} {
		if !slices.Contains(ld, f) {
			t.Errorf("-ldflags %q lacks %s", gb.args[i+1], f)
		}
	}
	if j := slices.Index(ld, "-X"); j < 0 || j+1 >= len(ld) || ld[j+1] != versionSymbol+"=$VERSION" {
		t.Errorf("-ldflags %q does not stamp -X %s=$VERSION", gb.args[i+1], versionSymbol)
	}
	for _, c := range commands {
		if !slices.Contains(gb.args, "./cmd/"+c) {
			t.Errorf("go build %q does not build ./cmd/%s", gb.args, c)
		}
	}
	o := slices.Index(gb.args, "-o")
	if o < 0 || o+1 >= len(gb.args) {
		t.Fatalf("go build %q has no -o", gb.args)
	}
	out := gb.args[o+1]
	copied := strings.Join(final.copies, " ")
	for _, c := range commands {
		if !strings.Contains(copied, "--from="+build.name+" ") || !strings.Contains(copied, filepath.Join(out, c)) {
			t.Errorf("final stage does not COPY %s from the %q stage: %q", filepath.Join(out, c), build.name, final.copies)
		}
	}
	if !strings.Contains(copied, "/usr/local/bin/") {
		t.Errorf("binaries are not copied to /usr/local/bin/ (the manifests' commands): %q", final.copies)
	}
}

func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	for _, want := range []string{".git", "testdata", "**/node_modules"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	for _, keep := range []string{"go.mod", "go.sum", "cmd", "internal", "engine", "pipeline", "proto", "shard", "*.go"} {
		if slices.Contains(lines, keep) {
			t.Errorf(".dockerignore excludes %s, which the build needs", keep)
		}
	}
}

var (
	hostOnce sync.Once
	hostDir  string
	hostErr  error
)

// hostBinaries builds coordinator, worker and phalanx for this machine with
// the Dockerfile's command line, once per test run.
func hostBinaries(t *testing.T) string {
	t.Helper()
	_, gb := dockerfileGoBuild(t)
	hostOnce.Do(func() {
		hostDir, hostErr = os.MkdirTemp("", "phalanx-deploy-bin")
		if hostErr != nil {
			return
		}
		hostErr = dockerBuild(gb, runtime.GOOS, runtime.GOARCH, hostDir)
	})
	if hostErr != nil {
		t.Fatal(hostErr)
	}
	return hostDir
}

// slowTier skips a test outside the slow tier. The Dockerfile's builds
// (-trimpath, static, and a cross-build for arm64) share nothing with the
// other tests' build cache: on a clean cache and 2 cores they alone take
// minutes. `PHALANX_SLOW=1 go test ./deploy` runs them; .ci/run does.
func slowTier(t *testing.T) {
	t.Helper()
	if os.Getenv("PHALANX_SLOW") == "" {
		t.Skip("the Dockerfile's static builds are the slow tier: PHALANX_SLOW=1 runs them (.ci/run does)")
	}
}

var (
	plainOnce sync.Once
	plainDir  string
	plainErr  error
)

// programs is a directory holding coordinator, worker and phalanx for
// tests that need the programs' behaviour (their flags, pull), not the
// image's build: in the slow tier the Dockerfile's build, otherwise a
// plain `go build`, which shares the build cache with the other packages'
// tests.
func programs(t *testing.T) string {
	t.Helper()
	if os.Getenv("PHALANX_SLOW") != "" {
		return hostBinaries(t)
	}
	plainOnce.Do(func() {
		plainDir, plainErr = os.MkdirTemp("", "phalanx-deploy-plain")
		if plainErr != nil {
			return
		}
		args := []string{"build", "-o", plainDir}
		for _, c := range commands {
			args = append(args, "./cmd/"+c)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			plainErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if plainErr != nil {
		t.Fatal(plainErr)
	}
	return plainDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range []string{hostDir, plainDir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

func dockerBuild(gb goBuild, goos, goarch, dir string) error {
	env, args := expandBuild(gb, goos, goarch, stampedVersion, dir)
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (%s): %v\n%s", strings.Join(args, " "), strings.Join(env, " "), err, out)
	}
	return nil
}

// TestStaticBinaries builds the image's binaries for both platforms of the
// multi-arch image, with the Dockerfile's own command line, and checks that
// they are static, trimmed and stamped.
func TestStaticBinaries(t *testing.T) {
	slowTier(t)
	_, gb := dockerfileGoBuild(t)
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			dir := t.TempDir()
			if runtime.GOOS == "linux" && runtime.GOARCH == arch {
				dir = hostBinaries(t)
			} else if err := dockerBuild(gb, "linux", arch, dir); err != nil {
				t.Fatal(err)
			}
			machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
			for _, c := range commands {
				bin := filepath.Join(dir, c)
				checkStatic(t, bin, machine)
				checkBuildInfo(t, bin, arch)
				b, err := os.ReadFile(bin)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(b, []byte(stampedVersion)) {
					t.Errorf("%s: the stamped version %q is not in the binary", c, stampedVersion)
				}
			}
		})
	}
}

func checkStatic(t *testing.T, bin string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s: ELF machine %v, want %v", bin, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: has a %v program header: not static, distroless/static cannot run it", bin, p.Type)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s: has a symbol table: -ldflags -s did not apply", bin)
	}
}

func checkBuildInfo(t *testing.T, bin, arch string) {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m %s: %v\n%s", bin, err, out)
	}
	info := string(out)
	for _, want := range []string{
		"build\tCGO_ENABLED=0", "build\t-trimpath=true", "build\tGOOS=linux", "build\tGOARCH=" + arch,
	} {
		if !strings.Contains(info, want+"\n") {
			t.Errorf("%s: build info lacks %q:\n%s", filepath.Base(bin), want, info)
		}
	}
	// -trimpath keeps -ldflags out of the build info (it may hold paths),
	// so TestStaticBinaries looks for the stamped version in the bytes.
}

// TestStampedVersionRuns runs the host build: the daemons start (their -h
// exits 0) without a C library.
func TestStampedVersionRuns(t *testing.T) {
	slowTier(t)
	dir := hostBinaries(t)
	for _, c := range []string{"coordinator", "worker"} {
		out, err := exec.Command(filepath.Join(dir, c), "-h").CombinedOutput()
		if err != nil {
			t.Errorf("%s -h: %v\n%s", c, err, out)
		}
	}
}
