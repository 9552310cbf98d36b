// Package progress tracks a transfer (files and bytes done of a total) and
// reports it: periodic lines, a bar when the output is a terminal, or JSON
// lines for machines, and a final summary. The jobs in fs update a Tracker;
// cmd decides where and how it is reported. Trackers are safe for concurrent
// use; the Reporter only reads them.
package progress

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Tracker counts a transfer's progress. The zero value is ready.
type Tracker struct {
	filesTotal, filesDone atomic.Int64
	bytesTotal, bytesDone atomic.Int64
	skipped, failed       atomic.Int64
}

// AddTotal grows the planned work (the plan may be found while listing).
func (t *Tracker) AddTotal(files int64, bytes int64) {
	t.filesTotal.Add(files)
	t.bytesTotal.Add(bytes)
}

// AddBytes records n bytes transferred.
func (t *Tracker) AddBytes(n int64) { t.bytesDone.Add(n) }

// FileDone records one file finished.
func (t *Tracker) FileDone() { t.filesDone.Add(1) }

// Skipped records one planned file that needed nothing (already up to
// date); its bytes count as done.
func (t *Tracker) Skipped(bytes int64) {
	t.skipped.Add(1)
	t.filesDone.Add(1)
	t.bytesDone.Add(bytes)
}

// Failed records one file that failed.
func (t *Tracker) Failed() { t.failed.Add(1) }

// Snapshot is a consistent-enough copy of a Tracker's counters.
type Snapshot struct {
	FilesDone  int64 `json:"files_done"`
	FilesTotal int64 `json:"files_total"`
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
	Skipped    int64 `json:"skipped"`
	Failed     int64 `json:"failed"`
}

// Snapshot reads the counters.
func (t *Tracker) Snapshot() Snapshot {
	return Snapshot{
		FilesDone: t.filesDone.Load(), FilesTotal: t.filesTotal.Load(),
		BytesDone: t.bytesDone.Load(), BytesTotal: t.bytesTotal.Load(),
		Skipped: t.skipped.Load(), Failed: t.failed.Load(),
	}
}

// Format of the reports.
const (
	Text = "text" // lines ("load: 10/20 files, 1.0 GiB/2.0 GiB, 300 MiB/s, ETA 3s")
	JSON = "json" // one JSON object per line
)

// Options configure a Reporter.
type Options struct {
	Op       string        // "load" or "store": the first word of each line
	Format   string        // Text or JSON
	Interval time.Duration // between periodic lines; default 5s
	// Terminal draws a bar instead of periodic lines (Text format only).
	Terminal bool
}

// Reporter writes a Tracker's progress to an io.Writer until Stop.
type Reporter struct {
	out   io.Writer
	t     *Tracker
	opts  Options
	start time.Time
	stop  context.CancelFunc
	done  chan struct{}
	mu    sync.Mutex // serialises writes to out
}

// Start begins reporting t to out.
func Start(out io.Writer, t *Tracker, opts Options) *Reporter {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Format == "" {
		opts.Format = Text
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reporter{out: out, t: t, opts: opts, start: time.Now(), stop: cancel, done: make(chan struct{})}
	go r.loop(ctx)
	return r
}

func (r *Reporter) loop(ctx context.Context) {
	defer close(r.done)
	if r.opts.Terminal && r.opts.Format == Text {
		r.bar(ctx)
		return
	}
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.line("progress", r.t.Snapshot(), nil)
		}
	}
}

func (r *Reporter) bar(ctx context.Context) {
	s := r.t.Snapshot()
	bar := progressbar.NewOptions64(s.BytesTotal,
		progressbar.OptionSetWriter(r.out), progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription(r.opts.Op), progressbar.OptionShowCount(),
		progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = bar.Clear()
			return
		case <-tick.C:
			s := r.t.Snapshot()
			bar.ChangeMax64(s.BytesTotal)
			bar.Describe(fmt.Sprintf("%s %d/%d files", r.opts.Op, s.FilesDone, s.FilesTotal))
			_ = bar.Set64(s.BytesDone)
		}
	}
}

// Event prints one message line now (for example a warning naming a key),
// in the reporter's format, with extra fields for JSON.
func (r *Reporter) Event(event, msg string, fields map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.opts.Format == JSON {
		m := map[string]any{"op": r.opts.Op, "event": event, "msg": msg, "time": time.Now().UTC().Format(time.RFC3339Nano)}
		for k, v := range fields {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		fmt.Fprintln(r.out, string(b))
		return
	}
	fmt.Fprintf(r.out, "%s: %s\n", r.opts.Op, msg)
}

func (r *Reporter) line(event string, s Snapshot, extra map[string]any) {
	elapsed := time.Since(r.start)
	rate := float64(s.BytesDone) / max(elapsed.Seconds(), 1e-9)
	if r.opts.Format == JSON {
		fields := map[string]any{"files_done": s.FilesDone, "files_total": s.FilesTotal,
			"bytes_done": s.BytesDone, "bytes_total": s.BytesTotal, "skipped": s.Skipped, "failed": s.Failed,
			"elapsed_s": elapsed.Seconds(), "bytes_per_s": rate}
		for k, v := range extra {
			fields[k] = v
		}
		r.Event(event, "", fields)
		return
	}
	msg := fmt.Sprintf("%d/%d files, %s/%s, %s/s", s.FilesDone, s.FilesTotal, Bytes(s.BytesDone), Bytes(s.BytesTotal), Bytes(int64(rate)))
	if event == "progress" && rate > 0 && s.BytesTotal > s.BytesDone {
		eta := time.Duration(float64(s.BytesTotal-s.BytesDone) / rate * float64(time.Second))
		msg += ", ETA " + eta.Round(time.Second).String()
	}
	if event != "progress" {
		msg = event + ": " + msg + ", " + elapsed.Round(time.Millisecond).String()
		for _, k := range sortedKeys(extra) {
			msg += fmt.Sprintf(", %s %v", k, extra[k])
		}
	}
	r.Event(event, msg, nil)
}

// Stop ends periodic reporting and prints the final summary line ("done" or
// the given event such as "failed"), with extra fields such as the requests
// by kind. It returns the final snapshot and the elapsed time.
func (r *Reporter) Stop(event string, extra map[string]any) (Snapshot, time.Duration) {
	r.stop()
	<-r.done
	s := r.t.Snapshot()
	r.line(event, s, extra)
	return s, time.Since(r.start)
}

func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

// Bytes formats n in binary units ("1.5 GiB").
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
