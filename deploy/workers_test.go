package deploy

import "testing"

// TestWorkersHoldNoModel: only the coordinators hold the model; a worker
// has no --model, no pull, no persistent volume, and fetches its layers
// into a writable, bounded emptyDir at --cache.
func TestWorkersHoldNoModel(t *testing.T) {
	forEach(t, func(t *testing.T, c *cluster) {
		for _, pc := range c.daemon(t, "worker") {
			if _, ok := pc.flags["model"]; ok {
				t.Errorf("%s: a worker needs no --model", pc.w.name)
			}
			m := mountAt(pc.c, pc.flags["cache"])
			if m == nil || m.ReadOnly {
				t.Fatalf("%s: --cache=%s is not a writable mount", pc.w.name, pc.flags["cache"])
			}
			sts := c.statefulSet(pc.w.name)
			if sts == nil {
				t.Fatalf("%s is not a StatefulSet", pc.w.name)
			}
			if len(sts.Spec.VolumeClaimTemplates) > 0 || len(sts.Spec.Template.Spec.InitContainers) > 0 {
				t.Errorf("%s: workers need neither a volume claim nor an init container", pc.w.name)
			}
			for _, v := range sts.Spec.Template.Spec.Volumes {
				if v.Name == m.Name && (v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.Value() < 5_200_000_000) {
					t.Errorf("%s: the cache volume must be an emptyDir bounded above Phi-2's 5.2 GB of layers: %+v", pc.w.name, v.VolumeSource)
				}
			}
		}
	})
}

// serviceNames are the names of the Services that select component's pods.
func (c *cluster) serviceNames(component string) []string {
	var out []string
	for _, s := range c.services {
		if s.Spec.Selector["app.kubernetes.io/component"] == component {
			out = append(out, s.Name)
		}
	}
	return out
}
