package deploy

// Probes, services, resources, security, disruption budgets, network
// policies and the overlays: what keeps the rendered cluster up and closed.

import (
	"path"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

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
