package gcs

import (
	"context"
	"errors"
	"iter"
	"slices"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/ferryio/ferry/backends"
)

// listPageSize is the number of results asked for per list request.
const listPageSize = 1000

// listAttrs are the only attributes fetched by listings.
var listAttrs = []string{"Name", "Size", "Updated", "Created", "Generation", "Etag", "CRC32C", "MD5", "ContentType"}

// List streams the objects under prefix in byte order (see
// backends.Backend). The reserved multipart prefix is skipped with offsets,
// so its objects are not even fetched.
func (b *Backend) List(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		if strings.HasPrefix(prefix, reservedPrefix) {
			return
		}
		if !strings.HasPrefix(reservedPrefix, prefix) {
			b.list(ctx, &storage.Query{Prefix: prefix}, yield)
			return
		}
		// The reserved prefix lies inside: list what sorts before it, then
		// what sorts after everything that starts with it.
		if !b.list(ctx, &storage.Query{Prefix: prefix, EndOffset: reservedPrefix}, yield) {
			return
		}
		b.list(ctx, &storage.Query{Prefix: prefix, StartOffset: reservedEnd}, yield)
	}
}

// ListDir streams one level under prefix in byte order (see
// backends.Backend). The reserved multipart prefix never shows.
func (b *Backend) ListDir(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		if strings.HasPrefix(prefix, reservedPrefix) {
			return
		}
		b.list(ctx, &storage.Query{Prefix: prefix, Delimiter: "/"}, func(e backends.Entry, err error) bool {
			if err == nil && strings.HasPrefix(e.Key, reservedPrefix) {
				return true
			}
			return yield(e, err)
		})
	}
}

// list runs q and yields its objects and prefixes in ascending key order,
// each key once. It reports whether the caller may go on (no error, yield
// did not stop).
//
// Servers send each page's objects and prefixes as two sorted lists, and
// fake-gcs-server sends every matching prefix from the page token on with
// every page. So entries are held in a sorted buffer and released up to a
// watermark no later entry can sort before: the page's last object name
// (objects come strictly in order across pages), or its last prefix when
// the page has no object. Keys at or before the last key released are
// dropped as repeats.
func (b *Backend) list(ctx context.Context, q *storage.Query, yield func(backends.Entry, error) bool) bool {
	q.Projection = storage.ProjectionNoACL
	if err := q.SetAttrSelection(listAttrs); err != nil {
		yield(backends.Entry{}, b.fail(ctx, "list", q.Prefix, err))
		return false
	}
	it := b.bucket.Objects(ctx, q)
	it.PageInfo().MaxSize = b.pageSize
	var (
		pending            []backends.Entry // sorted by Key, unique
		last               string           // last key released
		released           bool
		maxObject, maxPref string // of the current page
	)
	release := func(upTo string, all bool) bool {
		n := 0
		for n < len(pending) && (all || pending[n].Key <= upTo) {
			if !yield(pending[n], nil) {
				return false
			}
			last, released = pending[n].Key, true
			n++
		}
		pending = slices.Delete(pending, 0, n)
		return true
	}
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return release("", true)
		}
		if err != nil {
			yield(backends.Entry{}, b.fail(ctx, "list", q.Prefix, err))
			return false
		}
		e := toEntry(attrs)
		if e.IsPrefix {
			maxPref = max(maxPref, e.Key)
		} else {
			maxObject = max(maxObject, e.Key)
		}
		if !released || e.Key > last {
			i, found := slices.BinarySearchFunc(pending, e.Key, func(p backends.Entry, k string) int { return strings.Compare(p.Key, k) })
			if !found {
				pending = slices.Insert(pending, i, e)
			}
		}
		if it.PageInfo().Remaining() > 0 {
			continue
		}
		// End of a page.
		mark := maxObject
		if mark == "" {
			mark = maxPref
		}
		if !release(mark, false) {
			return false
		}
		maxObject, maxPref = "", ""
	}
}

// toEntry converts one listing result.
func toEntry(a *storage.ObjectAttrs) backends.Entry {
	if a.Prefix != "" {
		return backends.Entry{ObjectInfo: backends.ObjectInfo{Key: a.Prefix}, IsPrefix: true}
	}
	return backends.Entry{ObjectInfo: toInfo(a)}
}
