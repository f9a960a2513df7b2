package deploy

// How the daemons are wired together in the manifests: ports, flags
// between coordinator, workers and etcd, and where the model lives.

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

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
			fromField(t, pc, "PHALANX_HOST_ID", "spec.nodeName")
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
