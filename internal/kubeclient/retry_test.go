package kubeclient

import (
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
}

func (s *scripted) RoundTrip(*http.Request) (*http.Response, error) {
	a := s.answers[min(s.calls, len(s.answers)-1)]
	s.calls++
	return a()
}

func status(code int) func() (*http.Response, error) {
	return func() (*http.Response, error) {
		return &http.Response{StatusCode: code, Body: io.NopCloser(strings.NewReader(""))}, nil
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
			rt := &RetryTransport{Next: next, Budget: time.Second, sleep: func(d time.Duration) { slept += d }}
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
		})
	}
}

// netOpError wraps a syscall error the way net.OpError does for a refused dial.
type netOpError struct{ err error }

func (e *netOpError) Error() string { return "dial tcp 127.0.0.1:6443: " + e.err.Error() }
func (e *netOpError) Unwrap() error { return e.err }
