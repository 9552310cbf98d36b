package mount

import (
	"sync"

	"github.com/ferryio/ferry/cache/block"
)

// recentBytes bounds the blocks recent holds (at least minRecent blocks).
const (
	recentBytes = 64 << 20
	minRecent   = 8
)

// recent holds the last blocks fetched from the store, read-only. The
// memory tier admits blocks asynchronously, so a reader asking for a block
// right after another reader's fetch of it completed may miss the tier and
// fetch it again; with many readers of one file that is frequent. recent
// answers them in that window. It holds at most max(minRecent,
// recentBytes/BlockSize) blocks, replacing the oldest.
//
// INVARIANT (whenever mu is not held): byKey holds exactly the keys of the
// non-nil entries of data, at the same positions as in keys.
type recent struct {
	mu    sync.Mutex
	keys  []block.Key       // GUARDED_BY(mu); ring of the keys held
	data  [][]byte          // GUARDED_BY(mu); nil: empty slot
	byKey map[block.Key]int // GUARDED_BY(mu); position in keys and data
	write int               // GUARDED_BY(mu); next position to replace
}

func newRecent(blockSize int64) *recent {
	n := max(minRecent, int(recentBytes/blockSize))
	return &recent{keys: make([]block.Key, n), data: make([][]byte, n), byKey: make(map[block.Key]int, n)}
}

// get returns the block stored under k.
func (r *recent) get(k block.Key) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.byKey[k]
	if !ok {
		return nil, false
	}
	return r.data[i], true
}

// put stores b under k, replacing the oldest block. b must not be
// modified afterwards by anyone.
func (r *recent) put(k block.Key, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i, ok := r.byKey[k]; ok {
		r.data[i] = b
		return
	}
	if r.data[r.write] != nil {
		delete(r.byKey, r.keys[r.write])
	}
	r.keys[r.write], r.data[r.write] = k, b
	r.byKey[k] = r.write
	r.write = (r.write + 1) % len(r.keys)
}
