// Package kubeclient builds the Kubernetes client the node plugin uses.
//
// Its transport retries reads that failed for a passing reason (the API
// server restarting, a dropped connection, 429 and 5xx answers) within a
// bounded budget. This matters because the kubelet (1.37) retries a failed
// NodePrepareResources only at its next pod resync, 60-90 s later: a claim
// lookup that fails for a moment inside the DRA helper would otherwise delay a
// pod by a minute. Writes are never retried here; their callers (the
// ResourceSlice controller, event sinks) already retry or are best effort.
package kubeclient

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options configure the client.
type Options struct {
	// Kubeconfig is a kubeconfig file; empty means in-cluster config.
	Kubeconfig string
	// RetryBudget bounds the total time spent retrying one read. The
	// kubelet gives a prepare call 45 s; the default leaves room for the
	// rest of the call.
	RetryBudget time.Duration
	// QPS and Burst override client-go's defaults (5/10), which throttle a
	// node that prepares many claims at once.
	QPS   float32
	Burst int
}

// New returns a clientset whose reads retry transient failures.
func New(opts Options) (kubernetes.Interface, *rest.Config, error) {
	var cfg *rest.Config
	var err error
	if opts.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", opts.Kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, nil, err
	}
	if opts.RetryBudget == 0 {
		opts.RetryBudget = 20 * time.Second
	}
	if opts.QPS > 0 {
		cfg.QPS = opts.QPS
	}
	if opts.Burst > 0 {
		cfg.Burst = opts.Burst
	}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &RetryTransport{Next: rt, Budget: opts.RetryBudget}
	})
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return client, cfg, nil
}

// RetryTransport retries GET requests that failed transiently.
type RetryTransport struct {
	Next http.RoundTripper
	// Budget is the most time spent on one request, retries included.
	Budget time.Duration
	// wait is replaced in tests; nil means waitOrDone.
	wait func(ctx context.Context, d time.Duration) error
}

// RoundTrip implements http.RoundTripper.
//
// Every response it does not return has its body closed; the one it
// returns, after the last attempt or when the request's context ends during
// a backoff, is the caller's to close, unread. A cancelled request thus
// answers with what the last attempt got, at once, not after the backoff.
func (t *RetryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.URL.Query().Get("watch") == "true" {
		return t.Next.RoundTrip(req)
	}
	wait := t.wait
	if wait == nil {
		wait = waitOrDone
	}
	deadline := time.Now().Add(t.Budget)
	backoff := 50 * time.Millisecond
	for {
		resp, err := t.Next.RoundTrip(req)
		if !retryable(resp, err) {
			return resp, err
		}
		if req.Context().Err() != nil || time.Now().Add(backoff).After(deadline) {
			return resp, err
		}
		// The body stays open during the wait so that a cancelled request
		// can still return it.
		if wait(req.Context(), backoff) != nil {
			return resp, err
		}
		discard(resp)
		backoff = min(backoff*2, 2*time.Second)
	}
}

// waitOrDone returns nil after d, or ctx's error as soon as ctx is done.
func waitOrDone(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// discard closes a response that will not be returned, after reading a
// little of it so that an HTTP/1.1 connection can be reused.
func discard(resp *http.Response) {
	if resp == nil || resp.Body == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	_ = resp.Body.Close()
}

func retryable(resp *http.Response, err error) bool {
	if err != nil {
		var netErr net.Error
		return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
			(errors.As(err, &netErr) && netErr.Timeout())
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
