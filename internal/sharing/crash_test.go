package sharing

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// This file walks every order of prepare and unprepare of three claims
// that time-slice one GPU, with a crash (the process and the manager gone,
// the checkpoint and the GPU kept) at every step, and checks after every
// operation what a user relies on: while any claim is prepared the GPU has
// the claims' settings, and once all are gone it has what it had before.

// model is a node: its GPU (the sim backend, which outlives managers), its
// checkpoint (records by claim UID) and the manager of the running plugin.
type model struct {
	t       *testing.T
	backend *sim.Backend
	gpu     string
	records map[string]*record
	manager *Manager
	// crashAt is the step that crashes (1-based); steps counts them.
	crashAt, steps int
}

type record struct {
	completed bool
	holds     []Hold
}

type crash struct{}

// step marks a point between two durable changes; the crashAt-th one
// crashes.
func (m *model) step() {
	m.steps++
	if m.steps == m.crashAt {
		panic(crash{})
	}
}

func (m *model) wants() []Setting {
	return []Setting{
		{GPU: m.gpu, Kind: TimeSlice, Value: "Long"},
		{GPU: m.gpu, Kind: ComputeMode, Value: "Default"},
	}
}

func (m *model) others(uid string) func() []Hold {
	return func() []Hold {
		var out []Hold
		uids := make([]string, 0, len(m.records))
		for u := range m.records {
			uids = append(uids, u)
		}
		sort.Strings(uids)
		for _, u := range uids {
			if u != uid {
				out = append(out, m.records[u].holds...)
			}
		}
		return out
	}
}

// prepare is the plugin's prepare: nothing to do for a completed record;
// record and apply; mark completed.
func (m *model) prepare(uid string) {
	if r, ok := m.records[uid]; ok && r.completed {
		return
	}
	ctx := context.Background()
	_, err := m.manager.Acquire(ctx, "ns/"+uid, uid, m.wants(), m.others(uid), func(h []Hold) error {
		m.records[uid] = &record{holds: h}
		m.step() // recorded, nothing applied
		return nil
	})
	if err != nil {
		m.t.Fatalf("prepare %s: %v", uid, err)
	}
	m.step() // applied, not completed
	m.records[uid].completed = true
	m.step() // completed
}

// unprepare is the plugin's unprepare: release, forget.
func (m *model) unprepare(uid string) {
	r, ok := m.records[uid]
	if !ok {
		return
	}
	err := m.manager.Release(context.Background(), "ns/"+uid, r.holds, m.others(uid), func() error {
		m.step() // restored, record still there
		delete(m.records, uid)
		return nil
	})
	if err != nil {
		m.t.Fatalf("unprepare %s: %v", uid, err)
	}
	m.step() // forgotten
}

// restart is the plugin starting again: a new manager; records that never
// completed are undone; completed ones are reconciled.
func (m *model) restart() {
	m.manager = NewManager(m.backend)
	ctx := context.Background()
	uids := make([]string, 0, len(m.records))
	for u := range m.records {
		uids = append(uids, u)
	}
	sort.Strings(uids)
	for _, u := range uids {
		r := m.records[u]
		if r.completed {
			continue
		}
		if err := m.manager.Release(ctx, "ns/"+u, r.holds, m.others(u), func() error { delete(m.records, u); return nil }); err != nil {
			m.t.Fatalf("restart: undo %s: %v", u, err)
		}
	}
	var held []Hold
	for _, r := range m.records {
		held = append(held, r.holds...)
	}
	if err := m.manager.Reconcile(ctx, func() []Hold { return held }); err != nil {
		m.t.Fatalf("restart: reconcile: %v", err)
	}
}

func (m *model) settings() (gpu.TimeSlice, gpu.ComputeMode) {
	inv, err := m.backend.Inventory(context.Background())
	if err != nil {
		m.t.Fatal(err)
	}
	g := inv.FindGPU(m.gpu)
	return g.TimeSlice, g.ComputeMode
}

// check: a completed claim sees its settings; no claim at all, the GPU's
// own; records never disagree on Previous.
func (m *model) check(where string, origTS gpu.TimeSlice, origCM gpu.ComputeMode) {
	ts, cm := m.settings()
	anyCompleted := false
	for _, r := range m.records {
		anyCompleted = anyCompleted || r.completed
		for _, h := range r.holds {
			want := map[Kind]string{TimeSlice: origTS.String(), ComputeMode: string(origCM)}[h.Kind]
			if h.Previous != want {
				m.t.Fatalf("%s: %s records previous %s %q, want %q", where, h.Claim, h.Kind, h.Previous, want)
			}
		}
	}
	switch {
	case anyCompleted && (ts != gpu.TimeSliceLong || cm != gpu.ComputeModeDefault):
		m.t.Fatalf("%s: a prepared claim runs with time slice %s, compute mode %s; want Long, Default", where, ts, cm)
	case len(m.records) == 0 && (ts != origTS || cm != origCM):
		m.t.Fatalf("%s: no claim holds the GPU, but it has time slice %s, compute mode %s; want %s, %s", where, ts, cm, origTS, origCM)
	}
}

// orders returns every sequence of P1..P3, U1..U3 with each Pi before Ui.
func orders() [][]string {
	var out [][]string
	var walk func(seq []string, prepared, unprepared map[int]bool)
	walk = func(seq []string, prepared, unprepared map[int]bool) {
		if len(seq) == 6 {
			out = append(out, append([]string(nil), seq...))
			return
		}
		for c := 1; c <= 3; c++ {
			switch {
			case !prepared[c]:
				prepared[c] = true
				walk(append(seq, fmt.Sprintf("P%d", c)), prepared, unprepared)
				prepared[c] = false
			case !unprepared[c]:
				unprepared[c] = true
				walk(append(seq, fmt.Sprintf("U%d", c)), prepared, unprepared)
				unprepared[c] = false
			}
		}
	}
	walk(nil, map[int]bool{}, map[int]bool{})
	return out
}

func TestEveryOrderWithACrashAtEveryStep(t *testing.T) {
	all := orders()
	if len(all) != 90 {
		t.Fatalf("%d orders, want 90", len(all))
	}
	const stepsPerRun = 3*3 + 3*2
	runs := 0
	for _, order := range all {
		for crashAt := 0; crashAt <= stepsPerRun; crashAt++ {
			name := strings.Join(order, ",") + fmt.Sprintf("/crash-%d", crashAt)
			runOrder(t, name, order, crashAt)
			runs++
		}
	}
	t.Logf("%d orders x %d crash points = %d runs", len(all), stepsPerRun+1, runs)
}

func runOrder(t *testing.T, name string, order []string, crashAt int) {
	ctx := context.Background()
	b, err := sim.NewFromConfig("node-a", &sim.Config{Profile: "dgxh100"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	inv, err := b.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	target := inv.GPUs[3].UUID
	// The GPU as an admin left it: not the defaults, so a restore of the
	// default instead of the previous value shows.
	if err := b.SetTimeSlice(ctx, target, gpu.TimeSliceMedium); err != nil {
		t.Fatal(err)
	}
	if err := b.SetComputeMode(ctx, target, gpu.ComputeModeProhibited); err != nil {
		t.Fatal(err)
	}
	m := &model{t: t, backend: b, gpu: target, records: map[string]*record{}, manager: NewManager(b), crashAt: crashAt}
	for i, op := range order {
		where := fmt.Sprintf("%s: after %s", name, strings.Join(order[:i+1], ","))
		if crashed := m.run(op); crashed {
			m.restart()
			m.check(where+" (crashed, restarted)", gpu.TimeSliceMedium, gpu.ComputeModeProhibited)
			m.run(op) // the kubelet retries the call that failed
		}
		m.check(where, gpu.TimeSliceMedium, gpu.ComputeModeProhibited)
	}
	if len(m.records) != 0 {
		t.Fatalf("%s: records left: %v", name, m.records)
	}
	if crashAt > 0 && m.steps < crashAt {
		t.Fatalf("%s: only %d steps, so crash %d never happened", name, m.steps, crashAt)
	}
}

// run runs one operation and tells whether it crashed.
func (m *model) run(op string) (crashed bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
			crashed = true
		}
	}()
	uid := "c" + op[1:]
	if op[0] == 'P' {
		m.prepare(uid)
	} else {
		m.unprepare(uid)
	}
	return false
}
