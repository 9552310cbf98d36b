package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/integration/testenv"
)

type bench struct {
	cfg     config
	srv     *testenv.MinIO
	bucket  string
	results []result
}

// seed uploads the dataset with the plain SDK, 16 at a time. Unless the
// dataset is md5Only, each object carries a full-object CRC32, as the AWS
// SDKs' default (RequestChecksumCalculation "when supported") sends with
// every PutObject; the SDK leaves it out over plain HTTP, so it is set here
// explicitly. Either way the ETag is the MD5 of the content.
func (b *bench) seed(ctx context.Context, ds dataset) error {
	c := b.srv.Client()
	start := time.Now()
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range ds.files {
		g.Go(func() error {
			body := make([]byte, ds.size)
			_, _ = rand.Read(body)
			in := &s3.PutObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(ds.key(i)), Body: bytes.NewReader(body)}
			if !ds.md5Only {
				sum := crc32.ChecksumIEEE(body)
				in.ChecksumCRC32 = aws.String(base64.StdEncoding.EncodeToString([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)}))
			}
			_, err := c.PutObject(ctx, in)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("seed %s: %w", ds.name, err)
	}
	fmt.Printf("bench: seeded %s: %d objects, %d MiB in %s\n", ds.name, ds.files, ds.bytes()>>20, time.Since(start).Round(time.Millisecond))
	return nil
}

// env returns the environment of a tool run. Peers run without
// AWS_CA_BUNDLE (see the package doc).
func (b *bench) env(peer bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		if peer && strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"AWS_ACCESS_KEY_ID="+b.srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+b.srv.SecretKey, "AWS_REGION="+b.srv.Region,
		"DATA_STORE_ENDPOINT="+b.srv.Endpoint,
		"RCLONE_CONFIG_MINIO_TYPE=s3", "RCLONE_CONFIG_MINIO_PROVIDER=Minio", "RCLONE_CONFIG_MINIO_ENV_AUTH=true",
		"RCLONE_CONFIG_MINIO_ENDPOINT="+b.srv.Endpoint, "RCLONE_CONFIG_MINIO_REGION="+b.srv.Region,
	)
}

// measurement is one run of a command.
type measurement struct {
	seconds  float64
	rssKiB   int64
	requests map[string]float64
}

// runOnce runs argv once (after dropping the page cache, when allowed,
// unless warm) and measures wall time, peak RSS and the requests MinIO
// served meanwhile.
func (b *bench) runOnce(ctx context.Context, peer, warm bool, argv []string) (measurement, error) {
	if !warm {
		dropCaches()
	}
	before, err := b.srv.Stats(ctx)
	if err != nil {
		return measurement{}, err
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = b.env(peer)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return measurement{}, err
	}
	hwm := watchHWM(cmd.Process.Pid)
	err = cmd.Wait()
	elapsed := time.Since(start)
	peak := hwm()
	if err != nil {
		return measurement{}, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, tail(out.String()))
	}
	after, err := b.srv.Stats(ctx)
	if err != nil {
		return measurement{}, err
	}
	m := measurement{seconds: elapsed.Seconds(), requests: after.Sub(before).Requests, rssKiB: peak}
	return m, nil
}

// measure runs cfg.runs times the command that next prepares and returns,
// each time cold (page cache dropped) unless warm, and adds the row with
// the median time and the highest peak RSS.
func (b *bench) measure(ctx context.Context, job, ds, tool string, peer, warm bool, next func() ([]string, error)) error {
	var ms []measurement
	for range b.cfg.runs {
		argv, err := next()
		if err != nil {
			return err
		}
		m, err := b.runOnce(ctx, peer, warm, argv)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	r := summarise(ms)
	r.job, r.dataset, r.tool = job, ds, tool
	b.add(r)
	return nil
}

// summarise makes a row of runs: the median time (and the fastest and
// slowest, since times on a shared VM move by tens of percent), the
// highest peak RSS, and the requests of the median run.
func summarise(ms []measurement) result {
	slices.SortFunc(ms, func(a, b measurement) int { return cmp.Compare(a.seconds, b.seconds) })
	var rss int64
	for _, m := range ms {
		rss = max(rss, m.rssKiB)
	}
	med := ms[len(ms)/2]
	return result{seconds: med.seconds, fastest: ms[0].seconds, slowest: ms[len(ms)-1].seconds,
		rssKiB: rss, requests: formatRequests(med.requests)}
}

// noop measures argv as a no-op re-run twice: right after the run, caches
// warm (a container restarted on the same node; the row the targets are
// read from), and with the page cache dropped, where both tools wait on
// MinIO reading each object's metadata from disk.
func (b *bench) noop(ctx context.Context, job, ds, tool string, peer bool, argv []string) error {
	if err := b.measure(ctx, job, ds+" no-op re-run", tool, peer, true, same(argv)); err != nil {
		return err
	}
	return b.measure(ctx, job, ds+" no-op re-run, cold", tool, peer, false, same(argv))
}

// same returns a next func for measure that runs argv as it is each time.
func same(argv []string) func() ([]string, error) {
	return func() ([]string, error) { return argv, nil }
}

func formatRequests(m map[string]float64) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%.0f", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// watchHWM samples the peak resident set (VmHWM) of process pid every
// 10ms until the returned func is called, which returns the last sample in
// KiB. VmHWM is a high-water mark, so a late sample loses nothing but the
// growth of the last few milliseconds. (wait4's ru_maxrss would not do: Linux
// carries the parent's high-water mark over fork and exec, so every child of
// a large bench process would report at least the bench's own size.)
func watchHWM(pid int) func() int64 {
	var peak atomic.Int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if kib := readHWM(pid); kib > peak.Load() {
				peak.Store(kib)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-stopped
		return peak.Load()
	}
}

func readHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// dropCaches empties the kernel page cache so every run starts cold; it
// needs root and is skipped silently otherwise.
func dropCaches() {
	syscall.Sync()
	if f, err := os.OpenFile("/proc/sys/vm/drop_caches", os.O_WRONLY, 0); err == nil {
		_, _ = io.WriteString(f, "3\n")
		f.Close()
	}
}

func tail(s string) string {
	if len(s) > 1500 {
		return "..." + s[len(s)-1500:]
	}
	return s
}

// load measures a cold load and a no-op re-run, ferry against rclone copy.
func (b *bench) load(ctx context.Context, ds dataset) error {
	src := fmt.Sprintf("s3://%s/%s/", b.bucket, ds.name)
	for _, t := range []struct {
		tool string
		peer bool
		argv func(dir string) []string
	}{
		{"ferry load", false, func(dir string) []string { return []string{b.cfg.ferry, "load", "--quiet", src, dir} }},
		{"rclone copy", true, func(dir string) []string {
			return []string{"rclone", "copy", "minio:" + b.bucket + "/" + ds.name, dir}
		}},
	} {
		dir := fmt.Sprintf("%s/load-%s-%s", b.cfg.work, ds.name, strings.Fields(t.tool)[0])
		argv := t.argv(dir)
		fresh := func() ([]string, error) { return argv, resetDir(dir) }
		if err := b.measure(ctx, "load", ds.name, t.tool, t.peer, false, fresh); err != nil {
			return err
		}
		if err := b.noop(ctx, "load", ds.name, t.tool, t.peer, argv); err != nil {
			return err
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	return nil
}

// store measures an upload to a fresh prefix and a no-op re-run, ferry
// against rclone copy (checksums on in both: their defaults).
func (b *bench) store(ctx context.Context, ds dataset) error {
	dir := fmt.Sprintf("%s/store-src-%s", b.cfg.work, ds.name)
	if err := resetDir(dir); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if _, err := b.runOnce(ctx, false, false, []string{b.cfg.ferry, "load", "--quiet", fmt.Sprintf("s3://%s/%s/", b.bucket, ds.name), dir}); err != nil {
		return err
	}
	for _, t := range []struct {
		tool string
		peer bool
		argv func(prefix string) []string
	}{
		{"ferry store", false, func(p string) []string {
			return []string{b.cfg.ferry, "store", "--quiet", dir, fmt.Sprintf("s3://%s/%s/", b.bucket, p)}
		}},
		{"rclone copy", true, func(p string) []string { return []string{"rclone", "copy", dir, "minio:" + b.bucket + "/" + p} }},
	} {
		run := 0
		var argv []string
		fresh := func() ([]string, error) {
			run++
			argv = t.argv(fmt.Sprintf("up-%s-%s-%d", ds.name, strings.Fields(t.tool)[0], run))
			return argv, nil
		}
		if err := b.measure(ctx, "store", ds.name, t.tool, t.peer, false, fresh); err != nil {
			return err
		}
		if err := b.noop(ctx, "store", ds.name, t.tool, t.peer, argv); err != nil {
			return err
		}
	}
	return nil
}

func resetDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o755)
}
