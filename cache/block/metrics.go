package block

import "github.com/prometheus/client_golang/prometheus"

// Tier label values.
const (
	tierMemory = "memory"
	tierDisk   = "disk"
)

// Metrics are the block cache's Prometheus metrics. Give one Metrics to one
// Cache: shared, the counters would add up but the bytes gauges would show
// whichever Cache reported last. A nil *Metrics records nothing.
type Metrics struct {
	hits, misses, evictions, hitBytes  *prometheus.CounterVec
	fetches, fetchErrors, fetchedBytes prometheus.Counter
	corrupt, diskErrors                prometheus.Counter
	bytes                              *prometheus.GaugeVec

	// Children resolved once, so the hot paths do no label lookups.
	memHit, memMiss, memEvict, memHitBytes     prometheus.Counter
	diskHit, diskMiss, diskEvict, diskHitBytes prometheus.Counter
	memBytes, diskBytes                        prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg (nil: create
// them without registering). It fails if reg already holds metrics of the
// same names.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	tier := []string{"tier"}
	m := &Metrics{
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_block_cache_hits_total", Help: "Block reads served by a cache tier.",
		}, tier),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_block_cache_misses_total", Help: "Block reads a cache tier could not serve.",
		}, tier),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_block_cache_evictions_total", Help: "Blocks evicted from a cache tier to stay within its bound.",
		}, tier),
		hitBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_block_cache_hit_bytes_total", Help: "Bytes of blocks served by a cache tier.",
		}, tier),
		fetches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_block_cache_fetches_total", Help: "Blocks fetched from the source after missing every tier.",
		}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_block_cache_fetch_errors_total", Help: "Fetches that failed (not cached).",
		}),
		fetchedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_block_cache_fetched_bytes_total", Help: "Bytes of blocks fetched from the source.",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_block_cache_disk_corrupt_total", Help: "Torn or damaged disk blocks found, removed and refetched.",
		}),
		diskErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_block_cache_disk_errors_total", Help: "Disk tier reads or writes that failed with an I/O error.",
		}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_block_cache_bytes", Help: "Bytes held by a cache tier (approximate for memory: lags queued admissions).",
		}, tier),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.hits, m.misses, m.evictions, m.hitBytes,
			m.fetches, m.fetchErrors, m.fetchedBytes, m.corrupt, m.diskErrors, m.bytes} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	m.memHit, m.diskHit = m.hits.WithLabelValues(tierMemory), m.hits.WithLabelValues(tierDisk)
	m.memMiss, m.diskMiss = m.misses.WithLabelValues(tierMemory), m.misses.WithLabelValues(tierDisk)
	m.memEvict, m.diskEvict = m.evictions.WithLabelValues(tierMemory), m.evictions.WithLabelValues(tierDisk)
	m.memHitBytes, m.diskHitBytes = m.hitBytes.WithLabelValues(tierMemory), m.hitBytes.WithLabelValues(tierDisk)
	m.memBytes, m.diskBytes = m.bytes.WithLabelValues(tierMemory), m.bytes.WithLabelValues(tierDisk)
	return m, nil
}

// The recorders below are nil-safe so the Cache can call them unguarded.

func (m *Metrics) hit(disk bool, n int) {
	if m == nil {
		return
	}
	if disk {
		m.diskHit.Inc()
		m.diskHitBytes.Add(float64(n))
	} else {
		m.memHit.Inc()
		m.memHitBytes.Add(float64(n))
	}
}

func (m *Metrics) miss(disk bool) {
	if m == nil {
		return
	}
	if disk {
		m.diskMiss.Inc()
	} else {
		m.memMiss.Inc()
	}
}

func (m *Metrics) evicted(disk bool) {
	if m == nil {
		return
	}
	if disk {
		m.diskEvict.Inc()
	} else {
		m.memEvict.Inc()
	}
}

func (m *Metrics) fetched(n int, err error) {
	if m == nil {
		return
	}
	m.fetches.Inc()
	if err != nil {
		m.fetchErrors.Inc()
		return
	}
	m.fetchedBytes.Add(float64(n))
}

func (m *Metrics) diskProblem(corrupt bool) {
	if m == nil {
		return
	}
	if corrupt {
		m.corrupt.Inc()
	} else {
		m.diskErrors.Inc()
	}
}

func (m *Metrics) setBytes(disk bool, n int64) {
	if m == nil {
		return
	}
	if disk {
		m.diskBytes.Set(float64(n))
	} else {
		m.memBytes.Set(float64(n))
	}
}
