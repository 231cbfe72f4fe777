package sharing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/gpu"
)

// Backend is what the manager needs of the GPUs: the current values
// (Inventory) and the setters.
type Backend interface {
	Inventory(ctx context.Context) (*gpu.Inventory, error)
	gpu.SettingsManager
}

// Manager applies and undoes holds. It is safe for concurrent use: calls
// on one GPU are serialised by a per-GPU lock, held from reading the other
// holds to the last change, so two claims never both think they are first.
type Manager struct {
	backend Backend

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// NewManager returns a manager over backend.
func NewManager(backend Backend) *Manager {
	return &Manager{backend: backend, locks: map[string]*sync.Mutex{}}
}

// Acquire makes the GPUs carry the claim's wants. others returns every
// other claim's holds (read under the GPU locks, so it sees every earlier
// Acquire); record must make the claim's holds durable and is called
// before any GPU changes. It returns the holds recorded. On error after
// record, some of the wants may be applied: the caller undoes the claim
// with Release, as for any recorded claim.
func (m *Manager) Acquire(ctx context.Context, claim, claimUID string, wants []Setting, others func() []Hold, record func([]Hold) error) ([]Hold, error) {
	if len(wants) == 0 {
		return nil, nil
	}
	defer m.lock(gpusOf(wants))()
	now, err := m.snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", claim, err)
	}
	holds, err := Plan(claim, claimUID, wants, others(), now.current)
	if err != nil {
		return nil, err
	}
	if err := record(holds); err != nil {
		return nil, fmt.Errorf("claim %s: record GPU settings: %w", claim, err)
	}
	for _, h := range holds {
		if err := m.apply(ctx, now, h.Setting); err != nil {
			return holds, fmt.Errorf("claim %s: %w", claim, err)
		}
	}
	return holds, nil
}

// Release puts back what the claim's holds changed, where no other claim
// holds the same setting, then calls forget (which deletes the claim's
// record) under the same locks. A failed restore returns before forget, so
// the record stays for the next try.
func (m *Manager) Release(ctx context.Context, claim string, mine []Hold, others func() []Hold, forget func() error) error {
	if len(mine) == 0 {
		return forget()
	}
	gpus := make([]string, 0, len(mine))
	for _, h := range mine {
		gpus = append(gpus, h.GPU)
	}
	defer m.lock(gpus)()
	restores := Restores(mine, others())
	if len(restores) > 0 {
		now, err := m.snapshot(ctx)
		if err != nil {
			return fmt.Errorf("claim %s: %w", claim, err)
		}
		for _, s := range restores {
			if err := m.apply(ctx, now, s); err != nil {
				return fmt.Errorf("claim %s: restore: %w", claim, err)
			}
			klog.FromContext(ctx).V(2).Info("Restored GPU setting, no claim holds it any more", "gpu", s.GPU, "setting", s.Kind, "value", s.Value)
		}
	}
	return forget()
}

// Reconcile applies what the holds hold where the GPU differs: after a
// restart, a crash between recording and applying, or a GPU reset. holds
// is read again under each GPU's lock, so a hold released meanwhile (its
// setting just restored) is not applied again. An error on one GPU does
// not stop the others; all are returned joined.
func (m *Manager) Reconcile(ctx context.Context, holds func() []Hold) error {
	first, _ := Wanted(holds())
	var failed []error
	for _, gpuUUID := range gpusOf(first) {
		err := func() error {
			defer m.lock([]string{gpuUUID})()
			wanted, errs := Wanted(holds())
			for _, err := range errs {
				klog.FromContext(ctx).Error(err, "Inconsistent GPU setting holds")
			}
			var now *snapshot
			for _, s := range wanted {
				if s.GPU != gpuUUID {
					continue
				}
				if now == nil {
					snap, err := m.snapshot(ctx)
					if err != nil {
						return err
					}
					now = &snap
				}
				if err := m.apply(ctx, *now, s); err != nil {
					return err
				}
			}
			return nil
		}()
		if err != nil {
			failed = append(failed, err)
		}
	}
	return errors.Join(failed...)
}

// lock takes the locks of the GPUs in a fixed order and returns the undo.
func (m *Manager) lock(gpus []string) func() {
	gpus = slices.Clone(gpus)
	slices.Sort(gpus)
	gpus = slices.Compact(gpus)
	m.mu.Lock()
	held := make([]*sync.Mutex, 0, len(gpus))
	for _, g := range gpus {
		l, ok := m.locks[g]
		if !ok {
			l = &sync.Mutex{}
			m.locks[g] = l
		}
		held = append(held, l)
	}
	m.mu.Unlock()
	for _, l := range held {
		l.Lock()
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].Unlock()
		}
	}
}

// snapshot is the node's settings as the backend reports them now.
type snapshot struct{ inv *gpu.Inventory }

func (m *Manager) snapshot(ctx context.Context) (snapshot, error) {
	inv, err := m.backend.Inventory(ctx)
	if err != nil {
		return snapshot{}, fmt.Errorf("read GPU settings: %w", err)
	}
	return snapshot{inv}, nil
}

// current implements Current over the snapshot.
func (s snapshot) current(uuid string, kind Kind) (string, error) {
	g := s.inv.FindGPU(uuid)
	if g == nil {
		return "", fmt.Errorf("GPU %s: %w (or it is unavailable)", uuid, gpu.ErrNotAGPU)
	}
	switch kind {
	case TimeSlice:
		if g.TimeSlice == gpu.TimeSliceUnknown {
			return "", nil
		}
		return g.TimeSlice.String(), nil
	case ComputeMode:
		return string(g.ComputeMode), nil
	}
	return "", fmt.Errorf("unknown GPU setting %q", kind)
}

// apply sets s unless the snapshot shows it already set.
func (m *Manager) apply(ctx context.Context, now snapshot, s Setting) error {
	if cur, err := now.current(s.GPU, s.Kind); err == nil && cur == s.Value {
		return nil
	}
	switch s.Kind {
	case TimeSlice:
		t, err := ParseTimeSlice(s.Value)
		if err != nil {
			return err
		}
		return m.backend.SetTimeSlice(ctx, s.GPU, t)
	case ComputeMode:
		if !gpu.ValidComputeMode(gpu.ComputeMode(s.Value)) {
			return fmt.Errorf("unknown compute mode %q", s.Value)
		}
		return m.backend.SetComputeMode(ctx, s.GPU, gpu.ComputeMode(s.Value))
	}
	return fmt.Errorf("unknown GPU setting %q", s.Kind)
}

// ParseTimeSlice reads a time slice by name (Default, Short, Medium, Long)
// or number (0 to 3).
func ParseTimeSlice(v string) (gpu.TimeSlice, error) {
	for t := gpu.TimeSliceDefault; t <= gpu.TimeSliceLong; t++ {
		if v == t.String() {
			return t, nil
		}
	}
	if n, err := strconv.Atoi(v); err == nil && gpu.TimeSlice(n).Valid() {
		return gpu.TimeSlice(n), nil
	}
	return 0, fmt.Errorf("time slice %q is not one of Default, Short, Medium, Long", v)
}

// gpusOf lists the settings' GPUs, each once, in order.
func gpusOf(settings []Setting) []string {
	out := make([]string, 0, len(settings))
	for _, s := range settings {
		if !slices.Contains(out, s.GPU) {
			out = append(out, s.GPU)
		}
	}
	return out
}
