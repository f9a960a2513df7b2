package controlplane

import (
	"math"
	"strings"
	"testing"

	"github.com/phalanx-llm/phalanx/shard"
)

func TestSameMachineSpeeds(t *testing.T) {
	w := func(id, host, threads, from string, speed float64) shard.WorkerInfo {
		return shard.WorkerInfo{ID: id, Speed: speed, Labels: map[string]string{
			LabelHost: host, LabelThreads: threads, LabelSpeed: from, LabelKernels: "avx512"}}
	}
	in := []shard.WorkerInfo{
		w("a1", "a", "2", SpeedCalibrated, 30),          // disturbed while a2 loaded
		w("a2", "a", "2", SpeedCalibrated, 120),         // the machine's speed
		w("a3", "a", "1", SpeedCalibrated, 70),          // fewer threads: its own speed
		w("a4", "a", "2", SpeedGiven, 10),               // --speed: as given
		w("a5", "a", "2", SpeedCalibrated, 0),           // not measured: stays unusable
		w("a6", "a", "2", SpeedCalibrated, math.Inf(1)), // no speed to compare: the machine's
		w("a7", "a", "2", SpeedCalibrated, 40),          // other kernels (below): its own speed
		w("b1", "b", "2", SpeedCalibrated, 50),          // another machine
		w("n1", "", "2", SpeedCalibrated, 20),           // no machine named
		w("n2", "", "2", SpeedCalibrated, 200),
	}
	in[6].Labels[LabelKernels] = "avx2"
	want := map[string]float64{"a1": 120, "a2": 120, "a3": 70, "a4": 10, "a5": 0, "a6": 120, "a7": 40, "b1": 50, "n1": 20, "n2": 200}
	out, raised := sameMachineSpeeds(in)
	for _, o := range out {
		if wantSpeed := want[o.ID]; o.Speed != wantSpeed {
			t.Errorf("%s: speed %v, want %v", o.ID, o.Speed, wantSpeed)
		}
	}
	// a1, a6 raised (a2 already at the fastest, a5 measured nothing).
	if len(raised) != 2 || !strings.Contains(raised[0], "a1 calibrated 30 layer-steps/s, planned at 120") || !strings.Contains(raised[1], "a6 calibrated") {
		t.Errorf("notes for the plan's explanation: %q", raised)
	}
	if in[0].Speed != 30 {
		t.Errorf("the input was modified: a1 speed %v", in[0].Speed)
	}

	// Two workers on one machine whose calibrations disagreed 4× split the
	// layers evenly once equalized (the planner alone gives the slow one 6 of 32).
	size := shard.ModelSize{NumLayers: 32, LayerBytes: 1 << 20}
	pair := []shard.WorkerInfo{w("w1", "m", "2", SpeedCalibrated, 25), w("w2", "m", "2", SpeedCalibrated, 100)}
	for i := range pair {
		pair[i].MemoryFree = 1 << 40
	}
	layers := func(p shard.Plan) []int {
		var n []int
		for _, st := range p.Stages {
			n = append(n, st.End-st.Start)
		}
		return n
	}
	raw, err := shard.MakePlan(size, pair, shard.PlanOptions{MinWorkers: 2})
	if err != nil {
		t.Fatal(err)
	}
	equal, _ := sameMachineSpeeds(pair)
	even, err := shard.MakePlan(size, equal, shard.PlanOptions{MinWorkers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if n := layers(even); len(n) != 2 || n[0] != 16 || n[1] != 16 {
		t.Errorf("equalized plan: layers %v, want [16 16] (raw calibrations gave %v)", n, layers(raw))
	}
	t.Logf("raw calibrations: layers %v; equalized: %v", layers(raw), layers(even))
}
