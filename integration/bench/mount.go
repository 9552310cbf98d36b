package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The mount benchmark: ferry mount against rclone mount (--vfs-cache-mode
// off and full) and s3fs, each mounting the dataset's prefix of the same
// MinIO bucket read-only. Every run mounts afresh (so each tool starts with
// cold metadata and data), drops the page cache, times one command through
// the mount, and records the mount process's peak RSS and the requests
// MinIO served during the command.

// mounter is one way of mounting a prefix.
type mounter struct {
	tool string // the row's tool column
	peer bool
	// argv mounts prefix (a folder of the bucket) at mnt, using cache as
	// the tool's disk cache when it has one.
	argv func(b *bench, prefix, mnt, cache string) []string
	// cached: the tool keeps data on disk across remounts (for the warm
	// rows); coldCache: it is also given its disk cache in the cold rows,
	// as its users run it (s3fs runs without one by default).
	cached, coldCache bool
}

func mounters() []mounter {
	return []mounter{
		{tool: "ferry mount", cached: true, argv: func(b *bench, prefix, mnt, cache string) []string {
			return []string{b.cfg.ferry, "mount", "--cache-dir", cache, fmt.Sprintf("s3://%s/%s/", b.bucket, prefix), mnt}
		}},
		{tool: "rclone mount (off)", peer: true, argv: func(b *bench, prefix, mnt, _ string) []string {
			return []string{"rclone", "mount", "minio:" + b.bucket + "/" + prefix, mnt, "--read-only", "--vfs-cache-mode", "off"}
		}},
		{tool: "rclone mount (full)", peer: true, cached: true, coldCache: true, argv: func(b *bench, prefix, mnt, cache string) []string {
			return []string{"rclone", "mount", "minio:" + b.bucket + "/" + prefix, mnt, "--read-only",
				"--vfs-cache-mode", "full", "--cache-dir", cache}
		}},
		{tool: "s3fs", peer: true, cached: true, argv: func(b *bench, prefix, mnt, cache string) []string {
			opts := "url=" + b.srv.Endpoint + ",use_path_request_style,ro,passwd_file=" + b.s3fsPasswd()
			if cache != "" {
				opts += ",use_cache=" + cache
			}
			return []string{"s3fs", b.bucket + ":/" + prefix, mnt, "-f", "-o", opts}
		}},
	}
}

// mountCase is one row group: a command timed through each tool's mount.
type mountCase struct {
	name   string // the dataset column
	prefix string
	// warm: each run first reads through a mount, unmounts, and mounts
	// again over the same disk cache; only cached tools take part.
	warm bool
	// serverWarm: instead of dropping the page cache before the command,
	// warm the server's (list and read the prefix through the S3 API).
	// MinIO reads every object's metadata file from its disk for each
	// LIST and GET, which a cloud store does not; with the page cache
	// dropped, the listing and small-file rows time MinIO's disk more
	// than the tools. Both variants are reported.
	serverWarm bool
	cmd        func(mnt string) []string
}

// mount measures the mount rows of ds: the big-file rows for "large", the
// listing and small-file rows for "small".
func (b *bench) mount(ctx context.Context, ds dataset) error {
	var cases []mountCase
	switch ds.name {
	case "large":
		file := func(i int) string { return filepath.Base(ds.key(i)) }
		mib := ds.size >> 20
		cases = []mountCase{
			{name: fmt.Sprintf("large: cold sequential read %d MiB", mib), prefix: ds.name,
				cmd: func(mnt string) []string { return []string{"cat", filepath.Join(mnt, file(0))} }},
			{name: fmt.Sprintf("large: warm read %d MiB after remount", mib), prefix: ds.name, warm: true,
				cmd: func(mnt string) []string { return []string{"cat", filepath.Join(mnt, file(0))} }},
			{name: "large: 2,000 random 4 KiB reads", prefix: ds.name,
				cmd: func(mnt string) []string { return fioRandom(filepath.Join(mnt, file(1)), ds.size) }},
			{name: "large: time to first byte", prefix: ds.name,
				cmd: func(mnt string) []string { return []string{"head", "-c", "1", filepath.Join(mnt, file(2))} }},
		}
	case "small":
		n := ds.files
		dirs := min(10, ds.dirs) // dir-000 .. dir-009: ds.files/ds.dirs files each
		for _, warm := range []bool{false, true} {
			server := "server cold"
			if warm {
				server = "server warm"
			}
			cases = append(cases,
				mountCase{name: fmt.Sprintf("small: ls -R of %d entries, %s", n+ds.dirs, server), prefix: ds.name, serverWarm: warm,
					cmd: func(mnt string) []string { return []string{"ls", "-R", mnt} }},
				mountCase{name: fmt.Sprintf("small: serial cat of %d files, %s", dirs*(n/ds.dirs), server), prefix: ds.name, serverWarm: warm,
					cmd: func(mnt string) []string {
						return []string{"sh", "-c", `exec cat "$1"/dir-00[0-9]/*`, "sh", mnt}
					}},
			)
		}
	default:
		return fmt.Errorf("no mount rows for dataset %q", ds.name)
	}
	for _, c := range cases {
		for _, m := range mounters() {
			if c.warm && !m.cached {
				continue
			}
			if err := b.measureMount(ctx, c, m); err != nil {
				return fmt.Errorf("%s, %s: %w", c.name, m.tool, err)
			}
		}
	}
	return nil
}

// fioRandom is fio doing 2,000 random 4 KiB reads of path (its size
// given), one at a time, with the same offsets for every tool.
func fioRandom(path string, size int64) []string {
	return []string{"fio", "--name=rand", "--filename=" + path, "--readonly", "--rw=randread", "--bs=4k",
		"--size=" + strconv.FormatInt(size, 10), "--number_ios=2000", "--ioengine=psync", "--randrepeat=1",
		"--norandommap", "--invalidate=0", "--output=/dev/null"}
}

// measureMount runs case c through m's mounts cfg.runs times and adds the
// row with the median time.
func (b *bench) measureMount(ctx context.Context, c mountCase, m mounter) error {
	var ms []measurement
	var notes []string
	for run := range b.cfg.runs {
		me, note, err := b.mountRun(ctx, c, m, run)
		if err != nil {
			return err
		}
		ms = append(ms, me)
		notes = append(notes, note)
	}
	r := summarise(ms)
	r.job, r.dataset, r.tool = "mount", c.name, m.tool
	if notes[0] != "" {
		r.requests = notes[0] + "; " + r.requests
	}
	b.add(r)
	return nil
}

// mountRun is one run: mount (twice for a warm case), drop the page cache,
// time the command.
func (b *bench) mountRun(ctx context.Context, c mountCase, m mounter, run int) (measurement, string, error) {
	base := filepath.Join(b.cfg.work, "mount")
	mnt, cache := filepath.Join(base, "mnt"), filepath.Join(base, "cache")
	for _, d := range []string{mnt, cache} {
		if err := resetDir(d); err != nil {
			return measurement{}, "", err
		}
	}
	defer os.RemoveAll(cache)
	if !c.warm && !m.coldCache {
		cache = ""
	}
	if c.warm {
		p, err := b.startMount(ctx, m, c.prefix, mnt, cache)
		if err != nil {
			return measurement{}, "", err
		}
		_, err = runQuiet(ctx, b.env(m.peer), c.cmd(mnt))
		if serr := p.stop(); err == nil {
			err = serr
		}
		if err != nil {
			return measurement{}, "", err
		}
	}
	p, err := b.startMount(ctx, m, c.prefix, mnt, cache)
	if err != nil {
		return measurement{}, "", err
	}
	if c.serverWarm {
		err = b.warmServer(ctx, c.prefix)
	} else {
		dropCaches()
	}
	if err != nil {
		p.stop()
		return measurement{}, "", err
	}
	before, err := b.srv.Stats(ctx)
	if err != nil {
		p.stop()
		return measurement{}, "", err
	}
	elapsed, err := runQuiet(ctx, b.env(m.peer), c.cmd(mnt))
	after, serr := b.srv.Stats(ctx)
	rss := p.peakRSS()
	note := p.boundNote()
	if stopErr := p.stop(); err == nil {
		err = errors.Join(serr, stopErr)
	}
	if err != nil {
		return measurement{}, "", fmt.Errorf("run %d: %w", run, err)
	}
	return measurement{seconds: elapsed.Seconds(), rssKiB: rss, requests: after.Sub(before).Requests}, note, nil
}

// runQuiet runs argv, its output discarded, and returns its wall time.
func runQuiet(ctx context.Context, env, argv []string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	start := time.Now()
	err := cmd.Run()
	if err != nil {
		return 0, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, tail(errOut.String()))
	}
	return time.Since(start), nil
}

// mountProc is one running mount process.
type mountProc struct {
	cmd  *exec.Cmd
	mnt  string
	out  *bytes.Buffer
	done chan struct{}
}

// startMount starts m's mount of prefix at mnt and waits until the kernel
// shows it.
func (b *bench) startMount(ctx context.Context, m mounter, prefix, mnt, cache string) (*mountProc, error) {
	argv := m.argv(b, prefix, mnt, cache)
	p := &mountProc{cmd: exec.Command(argv[0], argv[1:]...), mnt: mnt, out: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = b.env(m.peer)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !mounted(mnt) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before mounting: %s", strings.Join(argv, " "), tail(p.out.String()))
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s: no mount after 60s: %s", strings.Join(argv, " "), tail(p.out.String()))
		}
	}
	return p, nil
}

// stop unmounts: SIGTERM (every tool unmounts on it), then a kill and a
// lazy unmount if the process does not go within 30 seconds.
func (p *mountProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		err = fmt.Errorf("%s did not exit on SIGTERM", p.cmd.Path)
	}
	if mounted(p.mnt) {
		_ = exec.Command("fusermount3", "-u", "-z", p.mnt).Run()
	}
	return err
}

// peakRSS is the process's peak resident set (VmHWM), in KiB.
func (p *mountProc) peakRSS() int64 { return readHWM(p.cmd.Process.Pid) }

var boundLine = regexp.MustCompile(`memory_bound="([^"]+)"`)

// boundNote is ferry's memory bound, as it logs it, and whether the peak
// RSS so far stayed within it; "" for other tools.
func (p *mountProc) boundNote() string {
	m := boundLine.FindStringSubmatch(p.out.String())
	if m == nil {
		return ""
	}
	f := strings.Fields(m[1])
	bound, err := strconv.ParseFloat(f[0], 64)
	if err != nil || len(f) != 2 || f[1] != "MiB" {
		return "RSS bound " + m[1]
	}
	verdict := "within"
	if float64(p.peakRSS())/1024 > bound {
		verdict = "OVER"
	}
	return fmt.Sprintf("RSS %s bound %s", verdict, m[1])
}

// mounted reports whether dir is a mount point.
func mounted(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// s3fsPasswd writes s3fs's credentials file once and returns its path.
func (b *bench) s3fsPasswd() string {
	p := filepath.Join(b.cfg.work, "s3fs-passwd")
	if _, err := os.Stat(p); err != nil {
		_ = os.WriteFile(p, []byte(b.srv.AccessKey+":"+b.srv.SecretKey+"\n"), 0o600)
	}
	return p
}

// warmServer lists every object under prefix through the S3 API, so that
// the server has their metadata in memory (MinIO keeps small objects'
// data in the same metadata file, so their data too).
func (b *bench) warmServer(ctx context.Context, prefix string) error {
	pages := s3.NewListObjectsV2Paginator(b.srv.Client(), &s3.ListObjectsV2Input{
		Bucket: aws.String(b.bucket), Prefix: aws.String(prefix + "/"),
	})
	for pages.HasMorePages() {
		if _, err := pages.NextPage(ctx); err != nil {
			return err
		}
	}
	return nil
}
