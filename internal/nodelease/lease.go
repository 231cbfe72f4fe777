package nodelease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// ErrClosed is returned by Enter after Close.
var ErrClosed = errors.New("node lease closed: this plugin instance is shutting down")

const (
	lockFileName      = "node.lock"
	requestFilePrefix = "lease-want-"
	// DefaultPollInterval is how often a holder looks for requests and a
	// waiter retries the lock. A handover costs at most about two of these.
	DefaultPollInterval = 50 * time.Millisecond
)

// Options configure a Lease.
type Options struct {
	// Dir holds the lock and request files; the plugin data directory.
	Dir string
	// ID names this process in request files and logs; unique per process
	// (for example the pod UID plus the PID). Default: the PID and the
	// start time.
	ID string
	// PollInterval; DefaultPollInterval when zero.
	PollInterval time.Duration
	// Logger for handover messages.
	Logger klog.Logger
}

// Lease is one process's handle on the node lease. It is safe for
// concurrent use.
type Lease struct {
	dir      string
	id       string
	poll     time.Duration
	logger   klog.Logger
	lockPath string

	mu sync.Mutex
	// changed is closed and replaced whenever the state below changes.
	changed   chan struct{}
	lockFile  *os.File // non-nil while held
	active    int      // work inside Enter/exit
	yielding  bool     // a handover or Close is draining the work inside
	closed    bool
	waiters   int  // Enter calls waiting for the lease
	acquiring bool // an acquire loop runs
	// lastErr is the error of the latest failed acquisition; errGen counts
	// failures so every Enter that waited through one returns it.
	lastErr   error
	errGen    int
	onAcquire func(ctx context.Context) error
	// acquisitions counts how often the lease was taken, for tests and logs.
	acquisitions int
	handovers    int
}

// New prepares a lease; it takes nothing yet. Call Run to serve handover
// requests while the lease is held.
func New(opts Options) (*Lease, error) {
	if opts.Dir == "" {
		return nil, errors.New("node lease: empty directory")
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("node lease: %w", err)
	}
	if opts.ID == "" {
		opts.ID = fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	}
	if strings.ContainsAny(opts.ID, "/\x00") {
		return nil, fmt.Errorf("node lease: ID %q contains a slash", opts.ID)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	return &Lease{
		dir: opts.Dir, id: opts.ID, poll: opts.PollInterval, logger: opts.Logger,
		lockPath: filepath.Join(opts.Dir, lockFileName), changed: make(chan struct{}),
	}, nil
}

// SetOnAcquire sets the hook run after every later acquisition, before work
// is admitted. An error from it releases the lease again and fails the
// waiting Enter calls.
func (l *Lease) SetOnAcquire(fn func(ctx context.Context) error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onAcquire = fn
}

// Enter admits one piece of work once this process holds the lease,
// acquiring it (and waiting for the holder to hand over) if needed. The
// returned function ends the work; call it exactly once.
func (l *Lease) Enter(ctx context.Context) (exit func(), err error) {
	l.mu.Lock()
	l.waiters++
	gen := l.errGen
	defer func() {
		l.waiters--
		l.mu.Unlock()
	}()
	for {
		if l.closed {
			return nil, ErrClosed
		}
		if l.lockFile != nil && !l.yielding {
			l.active++
			return l.exitFunc(), nil
		}
		if l.errGen != gen {
			return nil, l.lastErr
		}
		if l.lockFile == nil && !l.acquiring {
			l.acquiring = true
			go l.acquire()
		}
		wait := l.changed
		l.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			l.mu.Lock()
			return nil, fmt.Errorf("waiting for the node lease: %w", context.Cause(ctx))
		}
		l.mu.Lock()
	}
}

// TryEnter admits work only if this process holds the lease now and is not
// handing it over; it never waits and never asks for the lease. Background
// work (cleanup) tries it first and asks with Enter only when it fails, so
// that it costs a handover only when the other instance has the lease.
func (l *Lease) TryEnter() (exit func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.lockFile == nil || l.yielding {
		return nil, false
	}
	l.active++
	return l.exitFunc(), true
}

func (l *Lease) exitFunc() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.active--
			l.broadcastLocked()
			l.mu.Unlock()
		})
	}
}

// Held tells whether this process holds the lease.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lockFile != nil
}

// Stats says how often the lease was acquired and handed over.
func (l *Lease) Stats() (acquisitions, handovers int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acquisitions, l.handovers
}

func (l *Lease) broadcastLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// acquire asks for the lease and takes it when the holder lets go. It gives
// up when nobody waits any more, so that an abandoned call does not pull
// the lease away from the other process.
func (l *Lease) acquire() {
	lockFile, err := l.takeLock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acquiring = false
	if err != nil || lockFile == nil {
		if err != nil {
			l.lastErr, l.errGen = err, l.errGen+1
		}
		l.broadcastLocked()
		return
	}
	hook := l.onAcquire
	if hook != nil {
		// Run the hook with the lease held but no work admitted yet. The
		// mutex is released meanwhile: the hook may take a while (a reload).
		l.mu.Unlock()
		err = hook(context.Background())
		l.mu.Lock()
		if err != nil {
			_ = lockFile.Close()
			l.lastErr, l.errGen = fmt.Errorf("after taking the node lease: %w", err), l.errGen+1
			l.broadcastLocked()
			return
		}
	}
	l.lockFile = lockFile
	l.acquisitions++
	l.logger.V(2).Info("Took the node lease", "id", l.id, "acquisitions", l.acquisitions)
	l.broadcastLocked()
}

// takeLock files a request and waits for the exclusive lock. It returns nil,
// nil when every waiter left or the lease was closed meanwhile.
func (l *Lease) takeLock() (*os.File, error) {
	lockFile, err := os.OpenFile(l.lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node lease: open %s: %w", l.lockPath, err)
	}
	var request *os.File
	defer func() {
		if request != nil {
			_ = os.Remove(filepath.Join(l.dir, requestFilePrefix+l.id))
			_ = request.Close()
		}
	}()
	for {
		err := unix.Flock(int(lockFile.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return lockFile, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			_ = lockFile.Close()
			return nil, fmt.Errorf("node lease: lock %s: %w", l.lockPath, err)
		}
		if request == nil {
			request, err = l.fileRequest()
			if err != nil {
				_ = lockFile.Close()
				return nil, err
			}
			l.logger.V(2).Info("Node lease is held by another plugin instance; asked for a handover", "id", l.id)
		}
		time.Sleep(l.poll)
		l.mu.Lock()
		giveUp := l.waiters == 0 || l.closed
		l.mu.Unlock()
		if giveUp {
			_ = lockFile.Close()
			return nil, nil
		}
	}
}

// fileRequest creates this process's request file and holds a shared flock
// on it for as long as it waits; the holder takes a free flock as the sign
// of a dead requester. The file is locked under a hidden name and then
// renamed, so the holder never sees it unlocked while its owner lives.
func (l *Lease) fileRequest() (*os.File, error) {
	path := filepath.Join(l.dir, requestFilePrefix+l.id)
	tmp := filepath.Join(l.dir, "."+requestFilePrefix+l.id)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node lease: request file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("node lease: lock request file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("node lease: request file: %w", err)
	}
	return f, nil
}

// Run serves handover requests from other processes until ctx ends.
func (l *Lease) Run(ctx context.Context) {
	ticker := time.NewTicker(l.poll)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if !l.Held() {
			continue
		}
		requester, err := l.liveRequest()
		if err != nil {
			l.logger.Error(err, "Looking for node lease requests")
			continue
		}
		if requester != "" {
			l.handOver(requester)
		}
	}
}

// liveRequest returns the ID of another process that waits for the lease,
// removing the request files of dead ones.
func (l *Lease) liveRequest() (string, error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return "", fmt.Errorf("list %s: %w", l.dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		id, ok := strings.CutPrefix(name, requestFilePrefix)
		if !ok || id == l.id {
			continue
		}
		path := filepath.Join(l.dir, name)
		f, err := os.Open(path)
		if err != nil {
			continue // gone meanwhile
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			// Nobody holds it: the requester died or just got the lease.
			_ = os.Remove(path)
			_ = f.Close()
			continue
		}
		_ = f.Close()
		return id, nil
	}
	return "", nil
}

// handOver drains the work inside and releases the lock.
func (l *Lease) handOver(requester string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lockFile == nil || l.yielding {
		return
	}
	l.yielding = true
	for l.active > 0 {
		wait := l.changed
		l.mu.Unlock()
		<-wait
		l.mu.Lock()
	}
	l.releaseLocked()
	l.handovers++
	l.logger.Info("Handed the node lease to another plugin instance", "id", l.id, "to", requester)
}

func (l *Lease) releaseLocked() {
	if l.lockFile != nil {
		_ = l.lockFile.Close() // closing the last descriptor drops the flock
		l.lockFile = nil
	}
	l.yielding = false
	l.broadcastLocked()
}

// Close stops admitting work, waits until the work inside has finished or
// ctx ends, and releases the lease.
func (l *Lease) Close(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.yielding = true
	l.broadcastLocked()
	for l.active > 0 {
		wait := l.changed
		l.mu.Unlock()
		select {
		case <-wait:
			l.mu.Lock()
		case <-ctx.Done():
			l.mu.Lock()
			return fmt.Errorf("node lease: %d calls still running: %w", l.active, ctx.Err())
		}
	}
	l.releaseLocked()
	return nil
}
