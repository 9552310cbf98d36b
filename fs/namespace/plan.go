package namespace

import (
	"fmt"
	"iter"
	"strings"

	"github.com/ferryio/ferry/backends"
)

// Item is one listed object with its verdict.
type Item struct {
	// Object is the listing entry as given (Key relative to the prefix).
	Object backends.Entry
	// Entry is the key's path; set when Err is nil.
	Entry
	// Err is nil for a key that can be materialised, or wraps
	// ErrUnsafeKey (see PathFor) or ErrConflict (naming both keys).
	Err error
}

// Checker decides, for a listing in strictly ascending byte order of key,
// which keys can become paths of one directory tree: each key must pass
// PathFor, and no key may be a file while another key lies under it as a
// directory ("a" and "a/b", or "a" and the marker "a/"). Both keys of such a
// pair are reported with ErrConflict, as is every further key under the
// file. A directory marker and the keys under it do not conflict.
//
// Such pairs are not adjacent in byte order ("a" < "a-b" < "a.txt" < "a/b"
// because '-' and '.' sort before '/'), so a file key cannot be decided when
// it is read. Every key that lies between a file F and F+"/" starts with F
// followed by a byte <= '/', so the undecided files always form a chain of
// prefixes of the latest key: the Checker holds those on a stack and
// releases each as soon as a key sorts past F+"/"'s range (at or after
// F+"0"), or at Flush. Memory is therefore O(number of file keys that are
// prefixes of the current key), at most its length in bytes, usually the
// directory depth or less; all other items are released at once.
//
// Items are released in the order they are decided, which is ascending key
// order except that a held file comes after the keys that sorted between it
// and its release. A Checker is not safe for concurrent use.
type Checker struct {
	last    string
	started bool
	held    []*Item // undecided files; each key a prefix of the next and of last
}

// Add takes the next listing entry and returns the items decided by it, in
// that order (possibly none, possibly several). An entry whose key does not
// sort strictly after the previous one returns an error wrapping
// ErrUnsorted; the Checker must not be used after that.
func (c *Checker) Add(e backends.Entry) ([]Item, error) {
	key := e.Key
	if c.started && key <= c.last {
		return nil, fmt.Errorf("%w: %q after %q", ErrUnsorted, key, c.last)
	}
	c.started, c.last = true, key

	// Release held files that no key from here on can lie under: those
	// key is not inside (F, F+"0").
	var out []Item
	n := len(c.held)
	for n > 0 && !within(key, c.held[n-1].Object.Key) {
		n--
	}
	for _, it := range c.held[n:] {
		out = append(out, *it)
	}
	clear(c.held[n:])
	c.held = c.held[:n]

	it := &Item{Object: e}
	ent, err := PathFor(key)
	if err != nil {
		it.Err = err
		return append(out, *it), nil
	}
	it.Entry = ent
	// Held files are a prefix chain of key; those followed by '/' in key
	// are files that key wants as a directory.
	for _, f := range c.held {
		if key[len(f.Object.Key)] != '/' {
			continue
		}
		if f.Err == nil {
			f.Err = fmt.Errorf("%w: %q is a file and a directory of %q", ErrConflict, f.Object.Key, key)
			f.Entry = Entry{}
		}
		if it.Err == nil {
			it.Err = fmt.Errorf("%w: %q lies under the file %q", ErrConflict, key, f.Object.Key)
			it.Entry = Entry{}
		}
	}
	// A file is held, even when already in conflict, so that every key
	// under it is reported too; directories can be decided now.
	if !ent.Dir && !e.IsPrefix {
		c.held = append(c.held, it)
		return out, nil
	}
	return append(out, *it), nil
}

// Flush returns the items still held, in ascending key order, at the end of
// the listing. The Checker is empty afterwards.
func (c *Checker) Flush() []Item {
	out := make([]Item, 0, len(c.held))
	for _, it := range c.held {
		out = append(out, *it)
	}
	c.held = nil
	return out
}

// Plan runs a Checker over a listing (keys relative to the prefix, ascending,
// as Backend.List or ListDir yield them) and yields every entry with its
// verdict in Item.Err, in the order the Checker decides them. The
// sequence's own error is a listing error, or ErrUnsorted; it is yielded
// once and ends the sequence (held items are then dropped: the listing is
// incomplete, so they could not be decided).
func Plan(listing iter.Seq2[backends.Entry, error]) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		var c Checker
		for e, err := range listing {
			if err != nil {
				yield(Item{}, err)
				return
			}
			items, err := c.Add(e)
			if err != nil {
				yield(Item{}, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
		}
		for _, it := range c.Flush() {
			if !yield(it, nil) {
				return
			}
		}
	}
}

// within reports whether key lies strictly between f and f+"0", that is key
// starts with f and the next byte is at most '/': only such keys can still
// be followed, in ascending order, by keys under f+"/".
func within(key, f string) bool {
	return len(key) > len(f) && strings.HasPrefix(key, f) && key[len(f)] <= '/'
}
