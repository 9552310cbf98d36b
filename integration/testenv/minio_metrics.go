package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ServerStats are MinIO's own counters, read from its Prometheus endpoint:
// requests by S3 API name (for example "GetObject", "ListObjectsV2",
// "HeadObject", "PutObject", "PutObjectPart") and bytes sent and received
// (MinIO's v3 metrics, which are current; the v2 ones lag by seconds). They count what any client did, ferry or a peer, so benchmarks
// and tests compare tools on the same terms. Take a Stats before and after
// and subtract.
type ServerStats struct {
	Requests      map[string]float64
	SentBytes     float64
	ReceivedBytes float64
}

// Stats reads the server's counters now.
func (m *MinIO) Stats(ctx context.Context) (ServerStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.Endpoint+"/minio/metrics/v3/api/requests", nil)
	if err != nil {
		return ServerStats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ServerStats{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ServerStats{}, fmt.Errorf("minio metrics: %s", resp.Status)
	}
	s := ServerStats{Requests: map[string]float64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "minio_api_requests_total":
			if api := label(labels, "name"); api != "" {
				s.Requests[api] += v
			}
		case "minio_api_requests_traffic_sent_bytes":
			s.SentBytes += v
		case "minio_api_requests_traffic_received_bytes":
			s.ReceivedBytes += v
		}
	}
	return s, sc.Err()
}

// Sub returns the counters of s minus those of before.
func (s ServerStats) Sub(before ServerStats) ServerStats {
	d := ServerStats{Requests: map[string]float64{}, SentBytes: s.SentBytes - before.SentBytes, ReceivedBytes: s.ReceivedBytes - before.ReceivedBytes}
	for k, v := range s.Requests {
		if n := v - before.Requests[k]; n != 0 {
			d.Requests[k] = n
		}
	}
	return d
}

func label(labels, name string) string {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}
