// Package metrics is what the kubelet plugin exposes at /metrics for
// Prometheus: how long prepares and unprepares take, why they fail, and
// what the node holds.
//
// Contract:
//   - One registry per plugin (no global state): tests build their own.
//   - Latencies are histograms with sub-millisecond buckets (a prepare on
//     the sim takes a few milliseconds; the kubelet's own start at 100 ms).
//   - Counts of what the node holds (prepared claims, devices by state, MPS
//     daemons, GPU settings held) are read from the plugin when scraped,
//     so they cannot drift from its state.
//   - Every metric is documented in the README's metrics table.
package metrics

import (
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Buckets for prepare and unprepare latencies, in seconds.
var Buckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Reasons a prepare or unprepare fails, for the errors counter.
const (
	// ReasonInvalid: the claim's config or allocation is wrong (the user's
	// or the scheduler's error); nothing on the node changed.
	ReasonInvalid = "invalid"
	// ReasonConflict: a device is held by another claim that needs it.
	ReasonConflict = "conflict"
	// ReasonNode: the node could not do it (hardware, files, API).
	ReasonNode = "node"
)

// ReasonError carries a failure's reason for the errors counter.
type ReasonError struct {
	Reason string
	Err    error
}

func (e *ReasonError) Error() string { return e.Err.Error() }
func (e *ReasonError) Unwrap() error { return e.Err }

// WithReason marks err with a reason; nil stays nil.
func WithReason(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &ReasonError{Reason: reason, Err: err}
}

// reasonOf is err's reason; ReasonNode when none is marked.
func reasonOf(err error) string {
	var r *ReasonError
	if errors.As(err, &r) {
		return r.Reason
	}
	return ReasonNode
}

// State is what the node holds when scraped.
type State struct {
	PreparedClaims int
	// Devices by state: "free", "prepared" (held by a claim) and
	// "unavailable" (published for a claim that holds it, but gone).
	Devices    map[string]int
	MPSDaemons int
	// SettingsHeld counts holds of GPU settings (time slice, compute mode).
	SettingsHeld int
}

// Metrics of one plugin.
type Metrics struct {
	reg          *prometheus.Registry
	prepare      *prometheus.HistogramVec
	unprepare    *prometheus.HistogramVec
	errors       *prometheus.CounterVec
	publications prometheus.Counter
}

// New registers the plugin's metrics; state is read at every scrape.
func New(state func() State) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		prepare: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gpudra_prepare_duration_seconds", Help: "Time to prepare one claim, by result (success or error).", Buckets: Buckets,
		}, []string{"result"}),
		unprepare: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gpudra_unprepare_duration_seconds", Help: "Time to unprepare one claim, by result (success or error).", Buckets: Buckets,
		}, []string{"result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpudra_errors_total", Help: "Failed prepares and unprepares, by operation and reason (invalid, conflict, node).",
		}, []string{"operation", "reason"}),
		publications: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpudra_slice_publications_total", Help: "Times the plugin handed its devices to the ResourceSlice controller.",
		}),
	}
	m.reg.MustRegister(m.prepare, m.unprepare, m.errors, m.publications, &stateCollector{state: state},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObservePrepare records one claim's prepare.
func (m *Metrics) ObservePrepare(d time.Duration, err error) { m.observe(m.prepare, "prepare", d, err) }

// ObserveUnprepare records one claim's unprepare.
func (m *Metrics) ObserveUnprepare(d time.Duration, err error) {
	m.observe(m.unprepare, "unprepare", d, err)
}

func (m *Metrics) observe(h *prometheus.HistogramVec, op string, d time.Duration, err error) {
	result := "success"
	if err != nil {
		result = "error"
		m.errors.WithLabelValues(op, reasonOf(err)).Inc()
	}
	h.WithLabelValues(result).Observe(d.Seconds())
}

// Published records one slice publication.
func (m *Metrics) Published() { m.publications.Inc() }

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

var (
	descClaims   = prometheus.NewDesc("gpudra_prepared_claims", "Claims the checkpoint records as prepared.", nil, nil)
	descDevices  = prometheus.NewDesc("gpudra_devices", "Published devices by state (free, prepared, unavailable).", []string{"state"}, nil)
	descMPS      = prometheus.NewDesc("gpudra_mps_daemons", "MPS control daemons the checkpoint records.", nil, nil)
	descSettings = prometheus.NewDesc("gpudra_gpu_settings_held", "Holds of GPU settings (time slice, compute mode) by prepared claims.", nil, nil)
)

// stateCollector reads State at every scrape.
type stateCollector struct{ state func() State }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descClaims
	ch <- descDevices
	ch <- descMPS
	ch <- descSettings
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.state()
	ch <- prometheus.MustNewConstMetric(descClaims, prometheus.GaugeValue, float64(s.PreparedClaims))
	for _, state := range []string{"free", "prepared", "unavailable"} {
		ch <- prometheus.MustNewConstMetric(descDevices, prometheus.GaugeValue, float64(s.Devices[state]), state)
	}
	ch <- prometheus.MustNewConstMetric(descMPS, prometheus.GaugeValue, float64(s.MPSDaemons))
	ch <- prometheus.MustNewConstMetric(descSettings, prometheus.GaugeValue, float64(s.SettingsHeld))
}
