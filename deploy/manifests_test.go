package deploy

import (
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/phalanx-llm/phalanx/internal/cliflag"
)

// The kustomizations under test: the base and every overlay.
var kustomizations = []string{"k8s/base", "k8s/overlays/small-cluster", "k8s/overlays/single-node", "k8s/overlays/mtls"}

// The health services the daemons register (internal/daemon): the
// coordinator's is SERVING only on the leader with a working pipeline.
const (
	inferenceHealth = "phalanx.v1.Inference"
	stageHealth     = "phalanx.v1.Stage"
)

// Phi-2 in F16 (microsoft/phi-2): 32 decoder layers of hidden size 2560 and
// MLP size 10240, 2048 positions. The planner (pipeline/controlplane,
// shard/planner.go) caps a worker at (--memory − fixed) / (layer + KV).
const (
	phi2Layers   = 32
	phi2Layer    = (4*2560*2560 + 2*2560*10240 + 4*2560 + 10240 + 2560 + 2*2560) * 2 // weights and biases, F16
	phi2KV       = 2048 * 2560 * 2 * 4                                               // KVReservePerLayer: K and V in f32
	plannerFixed = 256 << 20                                                         // FixedBytes
)

// Flags that another change adds; an overlay using them is skipped, not
// failed, while the binaries lack them.
var comingFlags = []string{"tls-cert", "tls-key", "tls-ca", "etcd-cert", "etcd-key", "etcd-ca"}

// cluster is one rendered kustomization, decoded into API types.
type cluster struct {
	name         string
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap
	pdbs         []*policyv1.PodDisruptionBudget
	netpols      []*networkingv1.NetworkPolicy
}

// workload is a Deployment or StatefulSet seen through its pod template.
type workload struct {
	kind, name string
	replicas   int
	pod        *corev1.PodTemplateSpec
}

func (c *cluster) workloads() []workload {
	var ws []workload
	for _, d := range c.deployments {
		ws = append(ws, workload{"Deployment", d.Name, int(ptrOr(d.Spec.Replicas, 1)), &d.Spec.Template})
	}
	for _, s := range c.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, int(ptrOr(s.Spec.Replicas, 1)), &s.Spec.Template})
	}
	return ws
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// render builds a kustomization with the kustomize API and decodes every
// object strictly: an unknown kind, an unknown field or a duplicate field
// fails the test.
func render(t *testing.T, dir string) *cluster {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	c := &cluster{name: dir}
	for _, r := range m.Resources() {
		js, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		gvk := r.GetApiVersion() + "/" + r.GetKind()
		var obj any
		switch gvk {
		case "apps/v1/Deployment":
			o := &appsv1.Deployment{}
			c.deployments, obj = append(c.deployments, o), o
		case "apps/v1/StatefulSet":
			o := &appsv1.StatefulSet{}
			c.statefulSets, obj = append(c.statefulSets, o), o
		case "v1/Service":
			o := &corev1.Service{}
			c.services, obj = append(c.services, o), o
		case "v1/ConfigMap":
			o := &corev1.ConfigMap{}
			c.configMaps, obj = append(c.configMaps, o), o
		case "policy/v1/PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			c.pdbs, obj = append(c.pdbs, o), o
		case "networking.k8s.io/v1/NetworkPolicy":
			o := &networkingv1.NetworkPolicy{}
			c.netpols, obj = append(c.netpols, o), o
		default:
			t.Fatalf("%s: %s %s: a kind this test does not know; add it", dir, gvk, r.GetName())
		}
		strict, err := sigsjson.UnmarshalStrict(js, obj)
		if err != nil {
			t.Fatalf("%s: %s %s: %v", dir, gvk, r.GetName(), err)
		}
		for _, e := range strict {
			t.Errorf("%s: %s %s: %v", dir, gvk, r.GetName(), e)
		}
	}
	return c
}

var (
	flagsOnce sync.Once
	flagSets  map[string]map[string]bool
	flagsErr  error
)

// realFlags parses the -h output of the programs (built like the image in the slow tier):
// "coordinator", "worker" and "phalanx pull".
func realFlags(t *testing.T) map[string]map[string]bool {
	t.Helper()
	dir := programs(t)
	flagsOnce.Do(func() {
		flagSets = map[string]map[string]bool{}
		for _, cmd := range [][]string{{"coordinator"}, {"worker"}, {"phalanx", "pull"}} {
			out, _ := exec.Command(filepath.Join(dir, cmd[0]), append(cmd[1:], "-h")...).CombinedOutput()
			set := map[string]bool{}
			for _, m := range regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9._-]*)`).FindAllStringSubmatch(string(out), -1) {
				set[m[1]] = true
			}
			if len(set) == 0 {
				flagsErr = fmt.Errorf("%s -h printed no flags:\n%s", strings.Join(cmd, " "), out)
				return
			}
			flagSets[strings.Join(cmd, " ")] = set
		}
	})
	if flagsErr != nil {
		t.Fatal(flagsErr)
	}
	return flagSets
}

// phalanxContainer is a container running one of the image's binaries.
type phalanxContainer struct {
	w       workload
	c       *corev1.Container
	init    bool
	program string            // "coordinator", "worker" or "phalanx pull"
	flags   map[string]string // --name=value
	posargs []string
}

func (c *cluster) phalanxContainers(t *testing.T) []phalanxContainer {
	t.Helper()
	var out []phalanxContainer
	for _, w := range c.workloads() {
		spec := &w.pod.Spec
		all := []*corev1.Container{}
		for i := range spec.InitContainers {
			all = append(all, &spec.InitContainers[i])
		}
		for i := range spec.Containers {
			all = append(all, &spec.Containers[i])
		}
		for i, ct := range all {
			if len(ct.Command) != 1 {
				continue
			}
			prog := path.Base(ct.Command[0])
			if !slices.Contains(commands, prog) {
				continue
			}
			pc := phalanxContainer{w: w, c: ct, init: i < len(spec.InitContainers), program: prog, flags: map[string]string{}}
			args := ct.Args
			if prog == "phalanx" {
				if len(args) == 0 {
					t.Errorf("%s: %s/%s: phalanx without a subcommand", c.name, w.name, ct.Name)
					continue
				}
				pc.program += " " + args[0]
				args = args[1:]
			}
			for _, a := range args {
				name, ok := strings.CutPrefix(a, "--")
				if !ok {
					pc.posargs = append(pc.posargs, a)
					continue
				}
				k, v, hasValue := strings.Cut(name, "=")
				if !hasValue {
					t.Errorf("%s: %s/%s: write %q as --flag=value, so a value is never taken for an argument", c.name, w.name, ct.Name, a)
				}
				if _, dup := pc.flags[k]; dup {
					t.Errorf("%s: %s/%s: --%s given twice", c.name, w.name, ct.Name, k)
				}
				pc.flags[k] = v
			}
			out = append(out, pc)
		}
	}
	return out
}

func (c *cluster) daemon(t *testing.T, program string) []phalanxContainer {
	var out []phalanxContainer
	for _, pc := range c.phalanxContainers(t) {
		if pc.program == program {
			out = append(out, pc)
		}
	}
	return out
}

func (c *cluster) configMap(name string) *corev1.ConfigMap {
	for _, cm := range c.configMaps {
		if cm.Name == name {
			return cm
		}
	}
	return nil
}

// envValue is what the kubelet sets a container variable to, as far as
// the manifests say: literal values (with $(VAR) expanded), ConfigMap
// keys; "" with ok for values only known at run time (fieldRef, …).
func (c *cluster) envValue(ct *corev1.Container, name string) (string, bool) {
	vars := map[string]string{}
	found := false
	for _, e := range ct.Env {
		v := ""
		switch {
		case e.ValueFrom == nil:
			v = expandVars(e.Value, vars)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			if cm := c.configMap(e.ValueFrom.ConfigMapKeyRef.Name); cm != nil {
				v = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
			}
		}
		vars[e.Name] = v
		if e.Name == name {
			found = true
		}
	}
	return vars[name], found
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func expandVars(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

func (c *cluster) expandArg(ct *corev1.Container, s string) string {
	vars := map[string]string{}
	for _, e := range ct.Env {
		vars[e.Name], _ = c.envValue(ct, e.Name)
	}
	return expandVars(s, vars)
}

func envVar(ct *corev1.Container, name string) *corev1.EnvVar {
	for i := range ct.Env {
		if ct.Env[i].Name == name {
			return &ct.Env[i]
		}
	}
	return nil
}

func forEach(t *testing.T, f func(t *testing.T, c *cluster)) {
	for _, k := range kustomizations {
		t.Run(path.Base(k), func(t *testing.T) { f(t, render(t, k)) })
	}
}

func TestRender(t *testing.T) {
	forEach(t, func(t *testing.T, c *cluster) {
		if len(c.deployments) != 1 || len(c.statefulSets) != 2 {
			t.Errorf("want the coordinator Deployment and the worker and etcd StatefulSets, got %d and %d", len(c.deployments), len(c.statefulSets))
		}
		for _, p := range []string{"coordinator", "worker", "phalanx pull"} {
			if len(c.daemon(t, p)) == 0 {
				t.Errorf("no container runs %s", p)
			}
		}
	})
}

// TestFlagsExist checks every --flag and PHALANX_* variable against the
// flags the real binaries print for -h.
func TestFlagsExist(t *testing.T) {
	real := realFlags(t)
	forEach(t, func(t *testing.T, c *cluster) {
		var missing []string
		for _, pc := range c.phalanxContainers(t) {
			known := real[pc.program]
			for f := range pc.flags {
				if !known[f] {
					missing = append(missing, fmt.Sprintf("%s/%s: %s has no --%s", pc.w.name, pc.c.Name, pc.program, f))
				}
			}
			for _, e := range pc.c.Env {
				if !strings.HasPrefix(e.Name, "PHALANX_") {
					continue
				}
				ok := false
				for f := range known {
					ok = ok || cliflag.EnvName(f) == e.Name
				}
				if !ok {
					missing = append(missing, fmt.Sprintf("%s/%s: %s has no flag for %s", pc.w.name, pc.c.Name, pc.program, e.Name))
				}
			}
		}
		var waiting, wrong []string
		for _, m := range missing {
			coming := false
			for _, f := range comingFlags {
				coming = coming || strings.HasSuffix(m, " --"+f)
			}
			if coming {
				waiting = append(waiting, m)
			} else {
				wrong = append(wrong, m)
			}
		}
		for _, m := range wrong {
			t.Error(m)
		}
		if len(wrong) == 0 && len(waiting) > 0 {
			t.Skipf("the binaries do not have the TLS flags yet:\n%s", strings.Join(waiting, "\n"))
		}
	})
}

// TestVariablesResolve: a $(VAR) the kubelet cannot resolve stays in the
// argument literally, and the daemon fails (or worse, does not).
func TestVariablesResolve(t *testing.T) {
	forEach(t, func(t *testing.T, c *cluster) {
		for _, w := range c.workloads() {
			for _, ct := range append(slices.Clone(w.pod.Spec.InitContainers), w.pod.Spec.Containers...) {
				defined := map[string]bool{}
				for _, e := range ct.Env {
					for _, m := range varRef.FindAllStringSubmatch(e.Value, -1) {
						if !defined[m[1]] {
							t.Errorf("%s/%s: env %s uses $(%s) before it is defined", w.name, ct.Name, e.Name, m[1])
						}
					}
					defined[e.Name] = true
					if r := e.ValueFrom; r != nil && r.ConfigMapKeyRef != nil && !ptrOr(r.ConfigMapKeyRef.Optional, false) {
						cm := c.configMap(r.ConfigMapKeyRef.Name)
						if cm == nil || cm.Data[r.ConfigMapKeyRef.Key] == "" {
							t.Errorf("%s/%s: env %s: ConfigMap %s has no key %s", w.name, ct.Name, e.Name, r.ConfigMapKeyRef.Name, r.ConfigMapKeyRef.Key)
						}
					}
				}
				for _, a := range append(slices.Clone(ct.Command), ct.Args...) {
					for _, m := range varRef.FindAllStringSubmatch(a, -1) {
						if !defined[m[1]] {
							t.Errorf("%s/%s: argument %q uses $(%s), which the container does not define", w.name, ct.Name, a, m[1])
						}
					}
				}
			}
		}
	})
}

// TestImages: every phalanx container runs one image, pinned by tag.
func TestImages(t *testing.T) {
	forEach(t, func(t *testing.T, c *cluster) {
		images := map[string]bool{}
		for _, pc := range c.phalanxContainers(t) {
			images[pc.c.Image] = true
		}
		if len(images) != 1 {
			t.Fatalf("phalanx containers run %d images, want one: %v", len(images), images)
		}
		for img := range images {
			repo, tag, ok := strings.Cut(img, ":")
			if !ok || tag == "" || strings.Contains(tag, "/") {
				t.Errorf("image %q has no tag", img)
			}
			for _, w := range c.workloads() {
				for _, ct := range w.pod.Spec.Containers {
					if !slices.Contains(commands, path.Base(strings.Join(ct.Command, ""))) && strings.HasPrefix(ct.Image, repo+":") {
						t.Errorf("%s/%s runs the phalanx image without a phalanx command", w.name, ct.Name)
					}
				}
			}
		}
	})
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	p, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil {
		t.Errorf("%q has no port", addr)
		return 0
	}
	return int32(p)
}

func hasContainerPort(ct *corev1.Container, p intstr.IntOrString) bool {
	for _, cp := range ct.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP
		}
	}
	return false
}

// TestDaemonWiring checks the coordinator's and workers' arguments: the
// addresses they listen on are container ports, workers advertise their
// stable DNS names, ids come from the pod names, and --memory/--threads
// from the container's resources.
func TestDaemonWiring(t *testing.T) {
	forEach(t, func(t *testing.T, c *cluster) {
		for _, pc := range c.daemon(t, "coordinator") {
			for _, f := range []string{"model", "listen", "http", "etcd", "cluster", "min-workers", "advertise"} {
				if _, ok := pc.flags[f]; !ok {
					t.Errorf("coordinator has no --%s", f)
				}
			}
			// Workers fetch weights from the coordinators' Service (any
			// coordinator serves them) at the gRPC port.
			if host, port, _ := strings.Cut(pc.flags["advertise"], ":"); !slices.Contains(c.serviceNames("coordinator"), host) ||
				port != strconv.Itoa(int(portOf(t, pc.flags["listen"]))) {
				t.Errorf("coordinator --advertise=%s: want its Service's name and --listen's port", pc.flags["advertise"])
			}
			for _, f := range []string{"listen", "http"} {
				if !strings.HasPrefix(pc.flags[f], "0.0.0.0:") {
					t.Errorf("coordinator --%s=%s: listen on every interface", f, pc.flags[f])
				}
				if !hasContainerPort(pc.c, intstr.FromInt32(portOf(t, pc.flags[f]))) {
					t.Errorf("coordinator --%s=%s is not a container port", f, pc.flags[f])
				}
			}
			fromField(t, pc, "PHALANX_ID", "metadata.name")
			fromResource(t, pc, "PHALANX_THREADS", "requests.cpu")
		}
		for _, pc := range c.daemon(t, "worker") {
			for _, f := range []string{"cache", "listen", "advertise", "etcd", "cluster", "metrics"} {
				if _, ok := pc.flags[f]; !ok {
					t.Errorf("worker has no --%s", f)
				}
			}
			for _, f := range []string{"listen", "metrics"} {
				if !hasContainerPort(pc.c, intstr.FromInt32(portOf(t, pc.flags[f]))) {
					t.Errorf("worker --%s=%s is not a container port", f, pc.flags[f])
				}
			}
			sts := c.statefulSet(pc.w.name)
			if sts == nil {
				t.Fatalf("the worker %s is not a StatefulSet", pc.w.name)
			}
			want := "$(POD_NAME)." + sts.Spec.ServiceName + ".$(POD_NAMESPACE).svc:" + strconv.Itoa(int(portOf(t, pc.flags["listen"])))
			if pc.flags["advertise"] != want {
				t.Errorf("worker --advertise=%s, want %s (its stable DNS name)", pc.flags["advertise"], want)
			}
			fromField(t, pc, "POD_NAME", "metadata.name")
			fromField(t, pc, "POD_NAMESPACE", "metadata.namespace")
			fromField(t, pc, "PHALANX_NAME", "metadata.name")
			fromResource(t, pc, "PHALANX_MEMORY", "limits.memory")
			fromResource(t, pc, "PHALANX_THREADS", "requests.cpu")
			if svc := c.service(sts.Spec.ServiceName); svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
				t.Errorf("the workers' Service %q must exist, be headless and publish not-ready addresses", sts.Spec.ServiceName)
			}
		}
		// Both daemons agree on the cluster and on etcd, whose endpoints
		// are the etcd pods' stable names.
		etcd := c.statefulSet("phalanx-etcd")
		if etcd == nil {
			t.Fatal("no phalanx-etcd StatefulSet")
		}
		members := int(ptrOr(etcd.Spec.Replicas, 1))
		var clusters, endpoints []string
		for _, pc := range append(c.daemon(t, "coordinator"), c.daemon(t, "worker")...) {
			clusters = append(clusters, pc.flags["cluster"])
			endpoints = append(endpoints, pc.flags["etcd"])
		}
		if len(slices.Compact(slices.Sorted(slices.Values(clusters)))) != 1 {
			t.Errorf("the daemons disagree on --cluster: %q", clusters)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(endpoints)))) != 1 {
			t.Errorf("the daemons disagree on --etcd: %q", endpoints)
		}
		var want []string
		for i := range members {
			want = append(want, fmt.Sprintf("%s-%d.%s:2379", etcd.Name, i, etcd.Spec.ServiceName))
		}
		got := strings.Split(endpoints[0], ",")
		for i := range got {
			got[i] = strings.TrimPrefix(strings.TrimPrefix(got[i], "http://"), "https://")
		}
		if !slices.Equal(got, want) {
			t.Errorf("--etcd=%s, want every member of %d: %s", endpoints[0], members, strings.Join(want, ","))
		}
		ect := &etcd.Spec.Template.Spec.Containers[0]
		ic, _ := c.envValue(ect, "ETCD_INITIAL_CLUSTER")
		if n := len(strings.Split(ic, ",")); n != members {
			t.Errorf("ETCD_INITIAL_CLUSTER has %d members, the StatefulSet %d: %s", n, members, ic)
		}
		for i := range members {
			name := fmt.Sprintf("%s-%d", etcd.Name, i)
			if !strings.Contains(ic, name+"=http") || !strings.Contains(ic, "//"+name+"."+etcd.Spec.ServiceName+".") {
				t.Errorf("ETCD_INITIAL_CLUSTER lacks %s at its stable name: %s", name, ic)
			}
		}
		if etcd.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			t.Error("etcd members must start in parallel: one alone never becomes Ready")
		}
		if !hasContainerPort(ect, intstr.FromInt32(2379)) || !hasContainerPort(ect, intstr.FromInt32(2380)) {
			t.Error("etcd does not expose 2379 and 2380")
		}
		// --min-workers cannot exceed the workers there are.
		for _, pc := range c.daemon(t, "coordinator") {
			n, err := strconv.Atoi(pc.flags["min-workers"])
			if err != nil || n < 1 || n > int(ptrOr(c.statefulSet("phalanx-worker").Spec.Replicas, 1)) {
				t.Errorf("--min-workers=%s for %d workers", pc.flags["min-workers"], ptrOr(c.statefulSet("phalanx-worker").Spec.Replicas, 1))
			}
		}
	})
}

func fromField(t *testing.T, pc phalanxContainer, name, field string) {
	t.Helper()
	e := envVar(pc.c, name)
	if e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != field {
		t.Errorf("%s/%s: %s must come from the downward API field %s", pc.w.name, pc.c.Name, name, field)
	}
}

func fromResource(t *testing.T, pc phalanxContainer, name, res string) {
	t.Helper()
	e := envVar(pc.c, name)
	if e == nil || e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil || e.ValueFrom.ResourceFieldRef.Resource != res {
		t.Errorf("%s/%s: %s must come from the container's %s", pc.w.name, pc.c.Name, name, res)
		return
	}
	if d := e.ValueFrom.ResourceFieldRef.Divisor; !d.IsZero() && d.Cmp(resource.MustParse("1")) != 0 {
		t.Errorf("%s/%s: %s divisor %s: the flag wants plain units (bytes, CPUs)", pc.w.name, pc.c.Name, name, d.String())
	}
}

func (c *cluster) statefulSet(name string) *appsv1.StatefulSet {
	for _, s := range c.statefulSets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (c *cluster) service(name string) *corev1.Service {
	for _, s := range c.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// snapshotDir is where `phalanx pull REPO --revision REV --cache CACHE`
// puts a model (internal/hub, huggingface_hub's layout).
func snapshotDir(cache, repo, rev string) string {
	return path.Join(cache, "models--"+strings.ReplaceAll(repo, "/", "--"), "snapshots", rev)
}

var commitHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// TestModelPath: every coordinator loads exactly the directory its pod's
// init container pulls, from the same volume, read-only.
func TestModelPath(t *testing.T) {
	forEach(t, func(t *testing.T, c *cluster) {
		pulls := map[string]phalanxContainer{}
		for _, pc := range c.daemon(t, "phalanx pull") {
			if !pc.init {
				t.Errorf("%s/%s: pull runs as an init container", pc.w.name, pc.c.Name)
			}
			pulls[pc.w.name] = pc
		}
		for _, pc := range c.daemon(t, "coordinator") {
			pull, ok := pulls[pc.w.name]
			if !ok {
				t.Errorf("%s has no model-pull init container", pc.w.name)
				continue
			}
			rev := c.expandArg(pull.c, pull.flags["revision"])
			if !commitHash.MatchString(rev) {
				t.Errorf("%s: pull --revision=%q: pin a commit, so the snapshot directory is known in advance", pc.w.name, rev)
			}
			if len(pull.posargs) != 1 {
				t.Fatalf("%s: pull %q: want one repository", pc.w.name, pull.posargs)
			}
			want := snapshotDir(pull.flags["cache"], pull.posargs[0], rev)
			if got := c.expandArg(pc.c, pc.flags["model"]); got != want {
				t.Errorf("%s: --model=%s, but the init container pulls into %s", pc.w.name, got, want)
			}
			pullMount := mountAt(pull.c, pull.flags["cache"])
			daemonMount := mountAt(pc.c, pull.flags["cache"])
			switch {
			case pullMount == nil || daemonMount == nil:
				t.Errorf("%s: the pull cache %s is not mounted in both containers", pc.w.name, pull.flags["cache"])
			case pullMount.Name != daemonMount.Name:
				t.Errorf("%s: pull writes volume %s, the daemon reads %s", pc.w.name, pullMount.Name, daemonMount.Name)
			case pullMount.ReadOnly || !daemonMount.ReadOnly:
				t.Errorf("%s: the model volume must be writable for the pull and read-only for the daemon", pc.w.name)
			}
			if e := envVar(pull.c, "HF_TOKEN"); e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || !ptrOr(e.ValueFrom.SecretKeyRef.Optional, false) {
				t.Errorf("%s: HF_TOKEN must come from an optional Secret", pc.w.name)
			}
		}
	})
}

func mountAt(ct *corev1.Container, dir string) *corev1.VolumeMount {
	for i := range ct.VolumeMounts {
		if ct.VolumeMounts[i].MountPath == dir {
			return &ct.VolumeMounts[i]
		}
	}
	return nil
}

// TestProbes: every probe's port is one the container exposes; the gRPC
// health services are the ones the daemons register; only readiness may
// follow leadership (a liveness probe on it would restart the standby).
func TestProbes(t *testing.T) {
	forEach(t, func(t *testing.T, c *cluster) {
		for _, w := range c.workloads() {
			for i := range w.pod.Spec.Containers {
				ct := &w.pod.Spec.Containers[i]
				prog := path.Base(strings.Join(ct.Command, " "))
				if ct.ReadinessProbe == nil || ct.LivenessProbe == nil {
					t.Errorf("%s/%s: needs readiness and liveness probes", w.name, ct.Name)
				}
				for kind, p := range map[string]*corev1.Probe{"startup": ct.StartupProbe, "liveness": ct.LivenessProbe, "readiness": ct.ReadinessProbe} {
					if p == nil {
						continue
					}
					switch {
					case p.GRPC != nil:
						if !hasContainerPort(ct, intstr.FromInt32(p.GRPC.Port)) {
							t.Errorf("%s/%s: %s probe on gRPC port %d, not a container port", w.name, ct.Name, kind, p.GRPC.Port)
						}
						svc := ptrOr(p.GRPC.Service, "")
						allowed := map[string][]string{"coordinator": {"", inferenceHealth}, "worker": {"", stageHealth}}[prog]
						if !slices.Contains(allowed, svc) {
							t.Errorf("%s/%s: %s probe asks for health service %q; %s registers %q", w.name, ct.Name, kind, svc, prog, allowed)
						}
						if svc == inferenceHealth && kind != "readiness" {
							t.Errorf("%s/%s: %s probe on %s: only the leader serves it", w.name, ct.Name, kind, svc)
						}
					case p.HTTPGet != nil:
						if !hasContainerPort(ct, p.HTTPGet.Port) {
							t.Errorf("%s/%s: %s probe on HTTP port %s, not a container port", w.name, ct.Name, kind, p.HTTPGet.Port.String())
						}
						if prog == "coordinator" || prog == "worker" {
							if !slices.Contains([]string{"/healthz", "/readyz"}, p.HTTPGet.Path) || (prog == "worker" && p.HTTPGet.Path == "/readyz") {
								t.Errorf("%s/%s: %s probe on %s, which %s does not serve", w.name, ct.Name, kind, p.HTTPGet.Path, prog)
							}
							if p.HTTPGet.Path == "/readyz" && kind != "readiness" {
								t.Errorf("%s/%s: %s probe on /readyz: only the leader is ready", w.name, ct.Name, kind)
							}
						}
					default:
						t.Errorf("%s/%s: %s probe is neither gRPC nor HTTP", w.name, ct.Name, kind)
					}
				}
				// The coordinator's readiness is leadership: that is how the
				// Service finds the leader.
				if prog == "coordinator" && ct.ReadinessProbe != nil {
					p := ct.ReadinessProbe
					leader := (p.GRPC != nil && ptrOr(p.GRPC.Service, "") == inferenceHealth) || (p.HTTPGet != nil && p.HTTPGet.Path == "/readyz")
					if !leader {
						t.Errorf("%s: the coordinator's readiness must be %s (or /readyz)", w.name, inferenceHealth)
					}
				}
				if prog == "worker" && ct.ReadinessProbe != nil && ct.ReadinessProbe.GRPC != nil && ptrOr(ct.ReadinessProbe.GRPC.Service, "") != stageHealth {
					t.Errorf("%s: the worker's readiness must be %s", w.name, stageHealth)
				}
			}
		}
	})
}

func selects(sel map[string]string, pod map[string]string) bool {
	return len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(pod))
}

// TestServices: every Service selects the pods of a workload and targets
// ports they expose.
func TestServices(t *testing.T) {
	forEach(t, func(t *testing.T, c *cluster) {
		for _, svc := range c.services {
			var pods []workload
			for _, w := range c.workloads() {
				if selects(svc.Spec.Selector, w.pod.Labels) {
					pods = append(pods, w)
				}
			}
			if len(pods) != 1 {
				t.Errorf("Service %s selects %d workloads, want one", svc.Name, len(pods))
				continue
			}
			for _, p := range svc.Spec.Ports {
				tp := p.TargetPort
				if tp.Type == intstr.Int && tp.IntVal == 0 {
					tp = intstr.FromInt32(p.Port)
				}
				ok := false
				for i := range pods[0].pod.Spec.Containers {
					ok = ok || hasContainerPort(&pods[0].pod.Spec.Containers[i], tp)
				}
				if !ok {
					t.Errorf("Service %s port %s targets %s, which %s does not expose", svc.Name, p.Name, tp.String(), pods[0].name)
				}
			}
		}
		for _, s := range c.statefulSets {
			if svc := c.service(s.Spec.ServiceName); svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("StatefulSet %s: serviceName %q is not a headless Service", s.Name, s.Spec.ServiceName)
			}
		}
		for _, d := range c.deployments {
			if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				t.Errorf("Deployment %s does not select its own pods", d.Name)
			}
		}
		for _, s := range c.statefulSets {
			if !selects(s.Spec.Selector.MatchLabels, s.Spec.Template.Labels) {
				t.Errorf("StatefulSet %s does not select its own pods", s.Name)
			}
		}
	})
}

// TestResources: every container requests CPU and memory and has a memory
// limit; each worker's limit holds its share of Phi-2's layers, and the
// survivors' still do when one worker is lost.
func TestResources(t *testing.T) {
	forEach(t, func(t *testing.T, c *cluster) {
		for _, w := range c.workloads() {
			for _, ct := range append(slices.Clone(w.pod.Spec.InitContainers), w.pod.Spec.Containers...) {
				r := ct.Resources
				if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() {
					t.Errorf("%s/%s: no CPU or memory request", w.name, ct.Name)
				}
				if r.Limits.Memory().IsZero() {
					t.Errorf("%s/%s: no memory limit", w.name, ct.Name)
				} else if r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
					t.Errorf("%s/%s: memory limit under the request", w.name, ct.Name)
				}
			}
		}
		for _, pc := range c.daemon(t, "worker") {
			n := pc.w.replicas
			limit := pc.c.Resources.Limits.Memory().Value()
			share := (phi2Layers + n - 1) / n
			need := int64(share*(phi2Layer+phi2KV) + plannerFixed)
			if limit < need {
				t.Errorf("%d workers: each holds %d layers and needs %d bytes; the memory limit (--memory) is %d", n, share, need, limit)
			}
			if n > 1 {
				share = (phi2Layers + n - 2) / (n - 1)
				if need := int64(share*(phi2Layer+phi2KV) + plannerFixed); limit < need {
					t.Errorf("%d workers: after losing one, each of %d must hold %d layers (%d bytes); the memory limit is %d", n, n-1, share, need, limit)
				}
			}
		}
	})
}

// TestSecurityContext: nothing runs as root or can become root.
func TestSecurityContext(t *testing.T) {
	forEach(t, func(t *testing.T, c *cluster) {
		for _, w := range c.workloads() {
			ps := w.pod.Spec.SecurityContext
			for _, ct := range append(slices.Clone(w.pod.Spec.InitContainers), w.pod.Spec.Containers...) {
				cs := ct.SecurityContext
				nonRoot := (cs != nil && cs.RunAsNonRoot != nil && *cs.RunAsNonRoot) || (ps != nil && ps.RunAsNonRoot != nil && *ps.RunAsNonRoot && (cs == nil || cs.RunAsNonRoot == nil))
				if !nonRoot {
					t.Errorf("%s/%s: runAsNonRoot is not true", w.name, ct.Name)
				}
				uid := int64(-1)
				if ps != nil && ps.RunAsUser != nil {
					uid = *ps.RunAsUser
				}
				if cs != nil && cs.RunAsUser != nil {
					uid = *cs.RunAsUser
				}
				if uid == 0 {
					t.Errorf("%s/%s: runs as UID 0", w.name, ct.Name)
				}
				if cs == nil || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
					t.Errorf("%s/%s: allowPrivilegeEscalation is not false", w.name, ct.Name)
				}
				if cs == nil || cs.Capabilities == nil || !slices.Contains(cs.Capabilities.Drop, "ALL") {
					t.Errorf("%s/%s: does not drop all capabilities", w.name, ct.Name)
				}
			}
		}
	})
}

// TestDisruptionBudgets: each component has a budget over pods that exist,
// and none blocks a node drain in steady state. Only the leading
// coordinator is Ready, so the coordinators' budget must allow evicting it.
func TestDisruptionBudgets(t *testing.T) {
	forEach(t, func(t *testing.T, c *cluster) {
		covered := map[string]bool{}
		for _, pdb := range c.pdbs {
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			var ws []workload
			for _, w := range c.workloads() {
				if !sel.Empty() && sel.Matches(labels.Set(w.pod.Labels)) {
					ws = append(ws, w)
				}
			}
			if len(ws) != 1 {
				t.Errorf("PDB %s selects %d workloads, want one", pdb.Name, len(ws))
				continue
			}
			w := ws[0]
			covered[w.name] = true
			expected, healthy := w.replicas, w.replicas
			if w.kind == "Deployment" && w.name == "phalanx-coordinator" {
				healthy = 1 // the leader
			}
			desired := 0
			switch {
			case pdb.Spec.MinAvailable != nil:
				desired, _ = intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, expected, true)
			case pdb.Spec.MaxUnavailable != nil:
				mu, _ := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, expected, true)
				desired = expected - mu
			}
			if healthy-desired <= 0 {
				t.Errorf("PDB %s: with %d of %d pods healthy it allows no eviction: draining a node would hang", pdb.Name, healthy, expected)
			}
		}
		for _, w := range c.workloads() {
			if !covered[w.name] {
				t.Errorf("%s has no PodDisruptionBudget", w.name)
			}
		}
		for _, d := range c.deployments {
			if d.Name == "phalanx-coordinator" && ptrOr(d.Spec.Replicas, 1) > 1 && d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("a rolling update of standby coordinators never completes (they are never Ready): use Recreate")
			}
		}
	})
}

// podPort is a pod of a workload and a port.
type podPort struct {
	labels map[string]string
	port   int32
}

// allowed evaluates the namespace's NetworkPolicies for traffic from a pod
// (or, with from nil, from outside the namespace) to a pod's port.
func (c *cluster) allowed(from map[string]string, to podPort) bool {
	isolated := false
	for _, np := range c.netpols {
		sel, _ := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if !sel.Matches(labels.Set(to.labels)) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			continue
		}
		isolated = true
		for _, rule := range np.Spec.Ingress {
			portOK := len(rule.Ports) == 0
			for _, p := range rule.Ports {
				portOK = portOK || (p.Port != nil && p.Port.IntVal == to.port)
			}
			peerOK := len(rule.From) == 0
			for _, peer := range rule.From {
				if peer.PodSelector != nil && peer.NamespaceSelector == nil && from != nil {
					ps, _ := metav1.LabelSelectorAsSelector(peer.PodSelector)
					peerOK = peerOK || ps.Matches(labels.Set(from))
				}
			}
			if portOK && peerOK {
				return true
			}
		}
	}
	return !isolated
}

// TestNetworkPolicies: default deny, then exactly the paths Phalanx uses.
func TestNetworkPolicies(t *testing.T) {
	forEach(t, func(t *testing.T, c *cluster) {
		pods := map[string]map[string]string{}
		for _, w := range c.workloads() {
			pods[w.pod.Labels["app.kubernetes.io/component"]] = w.pod.Labels
		}
		for _, np := range c.netpols {
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, l := range pods {
				if sel.Matches(labels.Set(l)) {
					n++
				}
			}
			if n == 0 {
				t.Errorf("NetworkPolicy %s selects no pods", np.Name)
			}
			for _, rule := range np.Spec.Ingress {
				for _, peer := range rule.From {
					if peer.PodSelector == nil || peer.NamespaceSelector != nil {
						continue
					}
					ps, _ := metav1.LabelSelectorAsSelector(peer.PodSelector)
					m := 0
					for _, l := range pods {
						if ps.Matches(labels.Set(l)) {
							m++
						}
					}
					if m == 0 {
						t.Errorf("NetworkPolicy %s admits traffic from pods that do not exist: %v", np.Name, peer.PodSelector)
					}
				}
			}
		}
		coord, worker, etcd := pods["coordinator"], pods["worker"], pods["etcd"]
		other := map[string]string{"app": "somebody-else"}
		for _, tc := range []struct {
			what string
			from map[string]string
			to   podPort
			want bool
		}{
			{"coordinator → worker gRPC", coord, podPort{worker, 7071}, true},
			{"coordinator → etcd", coord, podPort{etcd, 2379}, true},
			{"worker → etcd", worker, podPort{etcd, 2379}, true},
			{"etcd → etcd peer", etcd, podPort{etcd, 2380}, true},
			{"clients → coordinator gRPC", nil, podPort{coord, 7070}, true},
			{"clients → coordinator HTTP", nil, podPort{coord, 8080}, true},
			{"clients → worker gRPC", nil, podPort{worker, 7071}, false},
			{"another pod → worker gRPC", other, podPort{worker, 7071}, false},
			{"worker → worker gRPC (weights between peers)", worker, podPort{worker, 7071}, true},
			{"worker → coordinator gRPC (weights)", worker, podPort{coord, 7070}, true},
			{"another pod → etcd", other, podPort{etcd, 2379}, false},
			{"coordinator → etcd peer", coord, podPort{etcd, 2380}, false},
			{"another pod → worker metrics", other, podPort{worker, 9090}, false},
		} {
			if got := c.allowed(tc.from, tc.to); got != tc.want {
				t.Errorf("%s: allowed %v, want %v", tc.what, got, tc.want)
			}
		}
		// Metrics scrapers come from labelled namespaces.
		scrape := 0
		for _, np := range c.netpols {
			for _, rule := range np.Spec.Ingress {
				for _, peer := range rule.From {
					if peer.NamespaceSelector != nil && len(peer.NamespaceSelector.MatchLabels) > 0 {
						scrape++
					}
				}
			}
		}
		if scrape == 0 {
			t.Error("no policy admits metrics scrapers from a labelled namespace")
		}
	})
}

// TestSmallCluster: one worker per node, and what a node carries fits in
// a 4 GB machine.
func TestSmallCluster(t *testing.T) {
	c := render(t, "k8s/overlays/small-cluster")
	sts := c.statefulSet("phalanx-worker")
	aff := sts.Spec.Template.Spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 ||
		aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey != "kubernetes.io/hostname" {
		t.Error("workers need required anti-affinity on kubernetes.io/hostname")
	}
	if ptrOr(sts.Spec.Replicas, 1) != 4 {
		t.Errorf("%d workers, want 4", ptrOr(sts.Spec.Replicas, 1))
	}
	var perNode resource.Quantity
	for _, w := range c.workloads() {
		for _, ct := range w.pod.Spec.Containers {
			perNode.Add(*ct.Resources.Requests.Memory())
		}
	}
	if max := resource.MustParse("3300Mi"); perNode.Cmp(max) > 0 {
		t.Errorf("a node with one of each pod requests %s of memory, more than a 4 GB node offers (%s)", perNode.String(), max.String())
	}
}

// TestSingleNode: one of everything.
func TestSingleNode(t *testing.T) {
	c := render(t, "k8s/overlays/single-node")
	for _, w := range c.workloads() {
		if w.replicas != 1 {
			t.Errorf("%s has %d replicas, want 1", w.name, w.replicas)
		}
	}
}
