package mount

import (
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryio/ferry/backends/metered"
	"github.com/ferryio/ferry/cache/block"
)

// Metrics are the mount's Prometheus metrics: store requests by kind and
// bytes (it is the metered.Observer of the mount's backend), reads served,
// errors by errno, readahead, and the block cache's own metrics. A nil
// *Metrics records nothing.
type Metrics struct {
	// Block is for block.Options.Metrics.
	Block *block.Metrics

	requests           *prometheus.CounterVec
	fetched, written   prometheus.Counter
	reads, readBytes   prometheus.Counter
	errors             *prometheus.CounterVec
	window             prometheus.Histogram
	prefetched, unused prometheus.Counter
	readaheadHeld      prometheus.Gauge
	requestsByKind     map[string]prometheus.Counter // resolved once; read-only after NewMetrics
	errorsEINTR        prometheus.Counter
}

// NewMetrics creates the metrics and registers them, and the block
// cache's, on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	bm, err := block.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	m := &Metrics{
		Block: bm,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_store_requests_total", Help: "Requests made to the object store, by kind (LIST, HEAD, GET).",
		}, []string{"kind"}),
		fetched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_store_read_bytes_total", Help: "Bytes fetched from the object store.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_store_written_bytes_total", Help: "Bytes written to the object store.",
		}),
		reads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_mount_reads_total", Help: "FUSE read requests served.",
		}),
		readBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_mount_read_bytes_total", Help: "Bytes returned to the kernel by FUSE reads.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_mount_errors_total", Help: "Operations that failed, by errno returned to the kernel.",
		}, []string{"errno"}),
		window: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ferry_mount_readahead_window_bytes",
			Help:    "Readahead window of a sequential reader, observed each time it grows.",
			Buckets: prometheus.ExponentialBuckets(1<<20, 2, 10),
		}),
		prefetched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_mount_readahead_blocks_total", Help: "Blocks requested ahead of the reader.",
		}),
		unused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_mount_readahead_unused_blocks_total", Help: "Blocks read ahead but dropped before the reader reached them.",
		}),
		readaheadHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_mount_readahead_bytes", Help: "Bytes of the readahead budget held by blocks read ahead.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.fetched, m.written, m.reads, m.readBytes,
			m.errors, m.window, m.prefetched, m.unused, m.readaheadHeld} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	m.requestsByKind = map[string]prometheus.Counter{}
	for _, k := range []string{metered.List, metered.Head, metered.Get} {
		m.requestsByKind[k] = m.requests.WithLabelValues(k)
	}
	m.errorsEINTR = m.errors.WithLabelValues(syscall.EINTR.Error())
	return m, nil
}

var _ metered.Observer = (*Metrics)(nil)

// Request counts one store request of kind (metered.Observer).
func (m *Metrics) Request(kind string) {
	if m == nil {
		return
	}
	if c, ok := m.requestsByKind[kind]; ok {
		c.Inc()
		return
	}
	m.requests.WithLabelValues(kind).Inc()
}

// BytesRead counts bytes fetched from the store (metered.Observer).
func (m *Metrics) BytesRead(n int64) {
	if m != nil {
		m.fetched.Add(float64(n))
	}
}

// BytesWritten counts bytes written to the store (metered.Observer).
func (m *Metrics) BytesWritten(n int64) {
	if m != nil {
		m.written.Add(float64(n))
	}
}

func (m *Metrics) read(n int) {
	if m != nil {
		m.reads.Inc()
		m.readBytes.Add(float64(n))
	}
}

func (m *Metrics) failed(errno syscall.Errno) {
	switch {
	case m == nil:
	case errno == syscall.EINTR:
		m.errorsEINTR.Inc()
	default:
		m.errors.WithLabelValues(errno.Error()).Inc()
	}
}

func (m *Metrics) windowGrew(bytes int64) {
	if m != nil {
		m.window.Observe(float64(bytes))
	}
}

func (m *Metrics) prefetch(n int) {
	if m != nil {
		m.prefetched.Add(float64(n))
	}
}

func (m *Metrics) dropped(unread int) {
	if m != nil && unread > 0 {
		m.unused.Add(float64(unread))
	}
}

func (m *Metrics) readaheadBytes(delta int64) {
	if m != nil {
		m.readaheadHeld.Add(float64(delta))
	}
}
