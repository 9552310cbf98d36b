// Package cache holds ferry's caches. It knows neither backends, nor FUSE,
// nor the files of a dataset: it stores byte blocks and metadata entries
// under opaque keys.
//
//   - block: the block cache the mount reads through (memory tier in front
//     of a persistent disk tier, with deduplicated fetches).
//   - memtier: the memory tier (ristretto, bounded by bytes).
//   - disktier: the disk tier (one checksummed file per block, LRU bounded,
//     survives restarts, one process per directory).
//   - meta: a TTL cache for lookups and listings, with negative entries.
package cache
