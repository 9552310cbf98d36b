package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/objmeta"
)

// Tests of `ferry mount --read-write`: what editors, tar and git do inside
// the mount, checked through the store itself; a mount killed with a
// closed file not yet uploaded; the conflict rule.

// startRW mounts s read-write with a fresh cache dir, returned for a
// remount.
func startRW(t *testing.T, s Store, flags ...string) (*ferryMount, string) {
	t.Helper()
	cache := filepath.Join(t.TempDir(), "cache")
	return startMount(t, s, append([]string{"--read-write", "--cache-dir", cache}, flags...)...), cache
}

// getObject reads key from the store; ok is false when it does not exist.
func getObject(t *testing.T, b backends.Backend, key string) ([]byte, backends.ObjectInfo, bool) {
	t.Helper()
	body, info, err := b.GetRange(context.Background(), key, 0, -1, backends.ReadOptions{})
	if errors.Is(err, backends.ErrNotExist) {
		return nil, info, false
	}
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return data, info, true
}

// storeKeys lists every key in the store.
func storeKeys(t *testing.T, b backends.Backend) []string {
	t.Helper()
	var keys []string
	for e, err := range b.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, e.Key)
	}
	return keys
}

func wantObject(t *testing.T, b backends.Backend, key string, want []byte) {
	t.Helper()
	got, _, ok := getObject(t, b, key)
	if !ok {
		t.Fatalf("%q is not in the store; keys: %q", key, storeKeys(t, b))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%q in the store holds %q, want %q", key, got, want)
	}
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q in %s: %v\n%s", name, args, dir, err, out)
	}
	return string(out)
}

func TestMountRWEditorTarGit(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			b := s.Backend(t)
			putObjects(t, b, map[string][]byte{"doc.txt": []byte("version 1\n")})
			m, _ := startRW(t, s)

			// An editor: write a temporary file, fsync it, rename it
			// over the original; a read gives the new bytes at once.
			tmp, v2 := m.path(".doc.txt.swp"), []byte("version 2, longer\n")
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(v2); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			// fsync returned: the object is durable in the store.
			wantObject(t, b, ".doc.txt.swp", v2)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, m.path("doc.txt")); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(m.path("doc.txt")); err != nil || !bytes.Equal(got, v2) {
				t.Fatalf("doc.txt after the rename: %q, %v", got, err)
			}
			wantObject(t, b, "doc.txt", v2)
			if _, _, ok := getObject(t, b, ".doc.txt.swp"); ok {
				t.Fatal("the temporary file is still in the store after the rename")
			}
			// Random writes and a truncate on an existing object.
			f, err = os.OpenFile(m.path("doc.txt"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("V"), 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(9); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			wantObject(t, b, "doc.txt", []byte("Version 2"))

			// tar -x of a tree, compared through the store.
			src := t.TempDir()
			tree := map[string][]byte{"a.txt": []byte("a"), "sub/b.bin": randomData(t, 300<<10),
				"sub/deeper/c.txt": []byte("c"), "sub/empty.txt": {}}
			for k, v := range tree {
				p := filepath.Join(src, "tree", k)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, v, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Mkdir(filepath.Join(src, "tree", "emptydir"), 0o755); err != nil {
				t.Fatal(err)
			}
			old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
			if err := os.Chtimes(filepath.Join(src, "tree", "a.txt"), old, old); err != nil {
				t.Fatal(err)
			}
			run(t, src, "tar", "-cf", "tree.tar", "tree")
			run(t, m.dir, "tar", "-xf", filepath.Join(src, "tree.tar"))
			for k, v := range tree {
				wantObject(t, b, "tree/"+k, v)
			}
			if _, _, ok := getObject(t, b, "tree/emptydir/"); !ok {
				t.Errorf("no marker for the empty directory; keys: %q", storeKeys(t, b))
			}
			_, info, _ := getObject(t, b, "tree/a.txt")
			if mt, ok := objmeta.ParseMtime(info.Metadata); !ok || !mt.Equal(old) {
				t.Errorf("tree/a.txt has mtime metadata %v (%v), want %v (set by tar)", mt, ok, old)
			}
			if d := diffSums(treeSums(t, m.path("tree")), treeSums(t, filepath.Join(src, "tree"))); len(d) > 0 {
				t.Errorf("the mount differs from the extracted tree: %q", d)
			}

			// git: init, add, commit, log and fsck inside the mount.
			repo := m.path("repo")
			if err := os.Mkdir(repo, 0o755); err != nil {
				t.Fatal(err)
			}
			run(t, repo, "git", "init", "-q")
			if err := os.WriteFile(filepath.Join(repo, "README"), []byte("hello\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, repo, "git", "add", "README")
			run(t, repo, "git", "commit", "-q", "-m", "first commit")
			if log := run(t, repo, "git", "log", "--oneline"); !strings.Contains(log, "first commit") {
				t.Fatalf("git log: %q", log)
			}
			run(t, repo, "git", "fsck", "--strict")
			wantObject(t, b, "repo/README", []byte("hello\n"))
			head, _, ok := getObject(t, b, "repo/.git/HEAD")
			if !ok || !strings.HasPrefix(string(head), "ref: refs/heads/") {
				t.Fatalf("repo/.git/HEAD in the store: %q %v", head, ok)
			}
			for _, k := range storeKeys(t, b) {
				if strings.HasSuffix(k, ".lock") {
					t.Errorf("a git lock file was left in the store: %q", k)
				}
			}

			// unlink and rmdir.
			if err := os.Remove(m.path("tree/sub/deeper/c.txt")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(m.path("tree/sub")); !errors.Is(err, syscall.ENOTEMPTY) {
				t.Errorf("rmdir of a non-empty directory: %v, want ENOTEMPTY", err)
			}
			if err := os.Remove(m.path("tree/sub/deeper")); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"tree/sub/deeper/c.txt", "tree/sub/deeper/"} {
				if _, _, ok := getObject(t, b, k); ok {
					t.Errorf("%q is still in the store after its removal", k)
				}
			}
			m.unmount()
		})
	}
}

func TestMountRWKilledCompletesOnRemount(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			b := s.Backend(t)
			// With an hour of write-back, a closed file is staged and
			// journaled but certainly not uploaded when the mount dies.
			m, cache := startRW(t, s, "--write-back", "1h")
			data := randomData(t, 200<<10)
			if err := os.WriteFile(m.path("closed.bin"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(m.path("closed.bin")); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("reading back the file just written: %d bytes, %v", len(got), err)
			}
			if _, _, ok := getObject(t, b, "closed.bin"); ok {
				t.Fatal("closed.bin is in the store already: the test would prove nothing")
			}
			if err := m.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-m.done
			_ = exec.Command("fusermount3", "-u", "-z", m.dir).Run()

			m2 := startMount(t, s, "--read-write", "--cache-dir", cache)
			wantObject(t, b, "closed.bin", data)
			if got, err := os.ReadFile(m2.path("closed.bin")); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("closed.bin through the new mount: %d bytes, %v", len(got), err)
			}
			if !strings.Contains(m2.out.String(), "recovered a pending upload") {
				t.Errorf("the new mount did not log the recovery:\n%s", m2.out.String())
			}
			m2.unmount()
		})
	}
}

func TestMountRWConflictKeepsBoth(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			b := s.Backend(t)
			putObjects(t, b, map[string][]byte{"shared.txt": []byte("base\n")})
			m, _ := startRW(t, s)
			f, err := os.OpenFile(m.path("shared.txt"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Someone else replaces the object while the edit is open.
			theirs := []byte("their version\n")
			putObjects(t, b, map[string][]byte{"shared.txt": theirs})
			if _, err := f.Write([]byte("my line\n")); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			wantObject(t, b, "shared.txt", theirs)
			var copies []string
			for _, k := range storeKeys(t, b) {
				if strings.HasPrefix(k, "shared.txt.conflict-") {
					copies = append(copies, k)
				}
			}
			if len(copies) != 1 {
				t.Fatalf("conflict copies in the store: %q, want one", copies)
			}
			wantObject(t, b, copies[0], []byte("base\nmy line\n"))
			if !strings.Contains(m.out.String(), copies[0]) {
				t.Errorf("the mount's warning does not name the conflict copy %q:\n%s", copies[0], m.out.String())
			}
			m.unmount()
		})
	}
}
