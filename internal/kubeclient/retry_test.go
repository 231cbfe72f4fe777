package kubeclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

type scripted struct {
	answers []func() (*http.Response, error)
	calls   int
	// responses are the responses handed out, in order.
	responses []*http.Response
}

func (s *scripted) RoundTrip(*http.Request) (*http.Response, error) {
	a := s.answers[min(s.calls, len(s.answers)-1)]
	s.calls++
	resp, err := a()
	if resp != nil {
		s.responses = append(s.responses, resp)
	}
	return resp, err
}

func status(code int) func() (*http.Response, error) {
	return func() (*http.Response, error) {
		return &http.Response{StatusCode: code, Body: &trackedBody{Reader: strings.NewReader(http.StatusText(code))}}, nil
	}
}

// trackedBody is a response body that records whether it was closed.
type trackedBody struct {
	io.Reader
	closed bool
}

func (b *trackedBody) Close() error {
	b.closed = true
	return nil
}

// checkBodies checks that every response RoundTrip did not return was
// closed, and that the one it returned was not.
func checkBodies(t *testing.T, next *scripted, returned *http.Response) {
	t.Helper()
	for i, resp := range next.responses {
		closed := resp.Body.(*trackedBody).closed
		if resp == returned && closed {
			t.Errorf("the returned response (attempt %d) has its body closed", i+1)
		}
		if resp != returned && !closed {
			t.Errorf("response of attempt %d was dropped with its body open", i+1)
		}
	}
}

func fail(err error) func() (*http.Response, error) {
	return func() (*http.Response, error) { return nil, err }
}

func TestRetryTransport(t *testing.T) {
	refused := &netOpError{syscall.ECONNREFUSED}
	tests := []struct {
		name      string
		method    string
		url       string
		answers   []func() (*http.Response, error)
		wantCalls int
		wantCode  int
		wantErr   bool
	}{
		{"success first time", http.MethodGet, "/x", []func() (*http.Response, error){status(200)}, 1, 200, false},
		{"503 then success", http.MethodGet, "/x", []func() (*http.Response, error){status(503), status(503), status(200)}, 3, 200, false},
		{"refused then success", http.MethodGet, "/x", []func() (*http.Response, error){fail(refused), status(200)}, 2, 200, false},
		{"404 is final", http.MethodGet, "/x", []func() (*http.Response, error){status(404), status(200)}, 1, 404, false},
		{"403 is final", http.MethodGet, "/x", []func() (*http.Response, error){status(403), status(200)}, 1, 403, false},
		{"other errors are final", http.MethodGet, "/x", []func() (*http.Response, error){fail(errors.New("tls: bad certificate")), status(200)}, 1, 0, true},
		{"writes are not retried", http.MethodPost, "/x", []func() (*http.Response, error){status(503), status(200)}, 1, 503, false},
		{"watches are not retried", http.MethodGet, "/x?watch=true", []func() (*http.Response, error){status(503), status(200)}, 1, 503, false},
		{"budget runs out", http.MethodGet, "/x", []func() (*http.Response, error){status(503)}, 0, 503, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := &scripted{answers: tc.answers}
			var slept time.Duration
			rt := &RetryTransport{Next: next, Budget: time.Second, wait: func(_ context.Context, d time.Duration) error {
				slept += d
				return nil
			}}
			req := httptest.NewRequest(tc.method, tc.url, nil)
			resp, err := rt.RoundTrip(req)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if resp != nil && resp.StatusCode != tc.wantCode {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantCode)
			}
			if tc.wantCalls > 0 && next.calls != tc.wantCalls {
				t.Errorf("calls = %d, want %d", next.calls, tc.wantCalls)
			}
			if tc.wantCalls == 0 && next.calls < 2 {
				t.Errorf("calls = %d, want several retries before the budget ran out", next.calls)
			}
			checkBodies(t, next, resp)
		})
	}
}

func TestRetryTransportReturnsAtOnceWhenTheRequestIsCancelledDuringBackoff(t *testing.T) {
	refused := &netOpError{syscall.ECONNREFUSED}
	tests := []struct {
		name     string
		answer   func() (*http.Response, error)
		wantCode int
		wantErr  error
	}{
		{"after a 503", status(http.StatusServiceUnavailable), http.StatusServiceUnavailable, nil},
		{"after a refused connection", fail(refused), 0, refused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := &scripted{answers: []func() (*http.Response, error){tc.answer}}
			waiting := make(chan struct{})
			var waits int
			rt := &RetryTransport{Next: next, Budget: time.Hour, wait: func(ctx context.Context, _ time.Duration) error {
				waits++
				if waits == 1 {
					close(waiting)
				}
				// The real wait, far longer than the test: only the
				// request's cancellation can end it.
				return waitOrDone(ctx, time.Hour)
			}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req := httptest.NewRequest(http.MethodGet, "/x", nil).WithContext(ctx)

			type result struct {
				resp *http.Response
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := rt.RoundTrip(req)
				done <- result{resp, err}
			}()
			<-waiting
			cancel()
			var got result
			select {
			case got = <-done:
			case <-time.After(time.Minute):
				// Not a timing assertion: the wait above lasts an hour,
				// so only a RoundTrip that ignores the cancellation gets
				// here.
				t.Fatal("RoundTrip still waiting a minute after its request was cancelled")
			}

			if next.calls != 1 || waits != 1 {
				t.Errorf("%d attempts and %d waits, want 1 of each: no retry after the cancellation", next.calls, waits)
			}
			if !errors.Is(got.err, tc.wantErr) || (tc.wantErr == nil) != (got.err == nil) {
				t.Errorf("err = %v, want the last attempt's error %v", got.err, tc.wantErr)
			}
			if tc.wantCode == 0 {
				if got.resp != nil {
					t.Errorf("response %v, want none", got.resp.Status)
				}
				return
			}
			if got.resp == nil || got.resp.StatusCode != tc.wantCode {
				t.Fatalf("response %+v, want the last attempt's %d", got.resp, tc.wantCode)
			}
			checkBodies(t, next, got.resp)
			body, err := io.ReadAll(got.resp.Body)
			if err != nil || string(body) != http.StatusText(tc.wantCode) {
				t.Errorf("body %q (%v), want the last attempt's %q, unread", body, err, http.StatusText(tc.wantCode))
			}
		})
	}
}

func TestWaitOrDoneWaitsWhileTheContextLasts(t *testing.T) {
	if err := waitOrDone(context.Background(), time.Millisecond); err != nil {
		t.Errorf("waitOrDone = %v, want nil after the wait", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := waitOrDone(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("waitOrDone on a cancelled context = %v, want %v", err, context.Canceled)
	}
}

// netOpError wraps a syscall error the way net.OpError does for a refused dial.
type netOpError struct{ err error }

func (e *netOpError) Error() string { return "dial tcp 127.0.0.1:6443: " + e.err.Error() }
func (e *netOpError) Unwrap() error { return e.err }
