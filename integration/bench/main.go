// Command bench measures ferry against its peers on one MinIO server on
// 127.0.0.1, in one run, and prints a table of times, ratios, peak RSS and
// server-side request counts (read from MinIO's own metrics, so every tool is
// counted the same way).
//
//	go run ./integration/bench [-jobs load,store,mount] [-datasets large,small,large-md5] [-runs 3] [-scale 1]
//
// Datasets: large = 4 x 256 MiB objects, small = 10,000 x 4 KiB objects in
// 100 directories, both with a full-object CRC32 per object as the AWS SDKs
// write by default; large-md5 = large with only the MD5 ETag (load only).
// -scale shrinks them (0.1 for a quick look). The ferry
// binary is $FERRY_BIN (make bench builds it). Peers: Debian's rclone and
// s3fs. rclone 1.60 cannot build its HTTP client when AWS_CA_BUNDLE is set,
// so the peers run without it (ferry runs with it, as users have it).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferryio/ferry/integration/testenv"
)

type config struct {
	jobs, datasets []string
	runs           int
	scale          float64
	ferry          string
	work           string
}

func main() {
	var cfg config
	jobs := flag.String("jobs", "load,store,mount", "comma-separated jobs to measure: load, store, mount")
	datasets := flag.String("datasets", "large,small,large-md5", "comma-separated datasets: large, small, large-md5 (large without CRC32s, load only)")
	flag.IntVar(&cfg.runs, "runs", 3, "runs per measurement; the median time is reported")
	flag.Float64Var(&cfg.scale, "scale", 1, "dataset size factor (1 = 4 x 256 MiB and 10,000 x 4 KiB)")
	flag.Parse()
	cfg.jobs, cfg.datasets = strings.Split(*jobs, ","), strings.Split(*datasets, ",")
	cfg.ferry = os.Getenv("FERRY_BIN")
	if cfg.ferry == "" {
		fmt.Println("bench: set FERRY_BIN to the ferry binary (make bench does)")
		os.Exit(2)
	}
	if err := run(context.Background(), cfg); err != nil {
		fmt.Println("bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	work, err := os.MkdirTemp("", "ferry-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cfg.work = work
	srv, err := testenv.StartMinIO(work)
	if err != nil {
		return err
	}
	defer srv.Stop()
	b := &bench{cfg: cfg, srv: srv, bucket: "bench"}
	if err := srv.CreateBucket(ctx, b.bucket, false); err != nil {
		return err
	}
	fmt.Printf("bench: MinIO at %s, data under %s, %d run(s) each, scale %g\n", srv.Endpoint, work, cfg.runs, cfg.scale)
	for _, name := range cfg.datasets {
		ds, ok := datasetsByName(cfg.scale)[name]
		if !ok {
			return fmt.Errorf("unknown dataset %q", name)
		}
		if err := b.seed(ctx, ds); err != nil {
			return err
		}
		for _, job := range cfg.jobs {
			if ds.jobs != nil && !slices.Contains(ds.jobs, job) {
				continue
			}
			var err error
			switch job {
			case "load":
				err = b.load(ctx, ds)
			case "store":
				err = b.store(ctx, ds)
			case "mount":
				err = b.mount(ctx, ds)
			default:
				err = fmt.Errorf("unknown job %q", job)
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", job, name, err)
			}
		}
	}
	b.print(os.Stdout)
	return nil
}

// dataset is a set of objects under one prefix.
type dataset struct {
	name    string
	files   int   // number of objects
	size    int64 // bytes each
	dirs    int   // spread over this many directories (1: flat)
	md5Only bool  // seeded without a CRC32: the ETag (an MD5) is the only checksum
	jobs    []string
}

func (d dataset) bytes() int64 { return int64(d.files) * d.size }

func (d dataset) key(i int) string {
	if d.dirs <= 1 {
		return fmt.Sprintf("%s/obj-%05d.bin", d.name, i)
	}
	return fmt.Sprintf("%s/dir-%03d/obj-%05d.bin", d.name, i%d.dirs, i)
}

func datasetsByName(scale float64) map[string]dataset {
	large := dataset{name: "large", files: 4, size: int64(256 << 20 * scale), dirs: 1}
	small := dataset{name: "small", files: max(int(10000*scale), 10), size: 4 << 10, dirs: 100}
	// large-md5 is large as an older client wrote it: ferry must verify
	// MD5, which hashes one object on one core.
	md5 := large
	md5.name, md5.md5Only, md5.jobs = "large-md5", true, []string{"load"}
	return map[string]dataset{"large": large, "small": small, "large-md5": md5}
}

// result is one measured row.
type result struct {
	job, dataset, tool string
	seconds            float64 // median wall time
	fastest, slowest   float64 // wall time of the fastest and slowest run
	rssKiB             int64   // peak RSS, max over runs
	requests           string  // server-side requests of one run, by API
}

func (b *bench) add(r result) {
	b.results = append(b.results, r)
	fmt.Printf("bench: %-6s %-18s %-22s %7.2fs (%.2f-%.2f)  RSS %6.1f MiB  %s\n", r.job, r.dataset, r.tool, r.seconds, r.fastest, r.slowest, float64(r.rssKiB)/1024, r.requests)
}

// print renders the results as a Markdown table with ferry's ratio to each peer.
func (b *bench) print(w *os.File) {
	fmt.Fprintln(w, "\n| job | dataset | tool | time (s): median (fastest-slowest) | speed-up of ferry: of medians (range) | peak RSS (MiB) | requests (server side) |")
	fmt.Fprintln(w, "| --- | --- | --- | ---: | ---: | ---: | --- |")
	for _, r := range b.results {
		ratio := ""
		if !strings.HasPrefix(r.tool, "ferry") {
			if f := b.find(r.job, r.dataset, "ferry"); f != nil && f.seconds > 0 {
				ratio = fmt.Sprintf("%.2fx (%.2f-%.2fx)", r.seconds/f.seconds, r.fastest/f.slowest, r.slowest/f.fastest)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.2f (%.2f-%.2f) | %s | %.1f | %s |\n", r.job, r.dataset, r.tool, r.seconds, r.fastest, r.slowest, ratio, float64(r.rssKiB)/1024, r.requests)
	}
	host, _ := os.Hostname()
	cpus, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*")
	fmt.Fprintf(w, "\nMachine: %s, %d CPUs, MinIO on 127.0.0.1 with data on local disk; median of %d runs.\n", host, len(cpus), b.cfg.runs)
}

// find returns ferry's row for the same job and dataset.
func (b *bench) find(job, ds, tool string) *result {
	i := slices.IndexFunc(b.results, func(r result) bool {
		return r.job == job && r.dataset == ds && strings.HasPrefix(r.tool, tool)
	})
	if i < 0 {
		return nil
	}
	return &b.results[i]
}
