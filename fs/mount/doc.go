// Package mount serves a store prefix as a FUSE filesystem (go-fuse/v2),
// read-only or read-write (see "Read-write" below), its file contents
// fetched on demand through the block cache (package cache/block).
//
// Namespace. Directories are the common prefixes of keys ("a/" of "a/b")
// and the "dir/" marker objects. A directory's listing is one ListDir (all
// its pages, which carry sizes, mtimes and versions) and is kept in a
// metadata cache for the metadata TTL; READDIRPLUS answers its lookups from
// the listing it is reading, so a directory of any size costs its LIST
// pages and no request per entry. Opening a directory lists ahead, in the
// background, the few directories a walk (ls -R, find) opens next, so
// that it finds them listed (see prefetchListings). A lookup without a
// cached listing probes the name with a Stat and a one-entry ListDir at
// once. Negative answers are cached too. The kernel's entry and attribute
// timeouts are what is left of the TTL. Keys that cannot be file names (namespace.PathFor) are
// hidden and logged; a name that is both a file and a directory shows the
// directory.
//
// Versions. A file's inode stands for one version of its object: when a
// lookup finds a new version the name gets a new inode, so the kernel's
// page cache of an inode (kept across opens, FOPEN_KEEP_CACHE) never mixes
// versions, and a handle reads the version it was opened on. Blocks are
// keyed by (store/key, version identity + size + block size, index), and
// fetched with IfVersion: once the object is replaced, blocks of the old
// version not yet cached fail with ESTALE, and those cached keep serving.
// The version identity is the ETag (s3, az, local, gcs) which listings and
// Stat both give, so a remount over a warm disk tier finds its blocks.
//
// Reads. A read within one block returns a slice of the cached block
// (no copy). Each handle keeps a readahead window (see window) that grows
// on sequential reads to Options.Readahead, its blocks fetched ahead by
// concurrent ranged GETs of several blocks each, through the block cache
// (which shares one GET among concurrent readers of a block); a GET hands
// each block to its readers as soon as its bytes have arrived, and blocks
// found in the cache (on disk after a remount) are read all at once.
// Blocks read ahead are kept on the disk tier, if any, and among the last
// few blocks fetched (recent), not in the memory tier: the kernel's page
// cache holds them once read (block.GetStreamed), and a streamed file
// would only fill the tier. Random reads fetch only the blocks they touch,
// and their blocks are kept in memory.
//
// Errors become errnos in one place, errnoFor: ENOENT, EACCES, ESTALE for a
// version change under an open handle, EINTR for an interrupted request,
// EIO (logged with key and cause) for the rest.
//
// Read-write (Options.Write). A file opened for writing (or truncated,
// chmod'ed, touched) is staged: copied down through the reader, pinned to
// the version it was looked up at (its base), into a file of the staging
// directory, or started empty for O_TRUNC and new files. Reads, writes and
// attributes of the file go to the staged copy from then on, so a reader
// sees its own writes. Every close(2) and fsync(2) of a written file
// records it in the journal (fs/journal: key, staged path, size, mtime,
// mode, checksums, base) before anything is sent, then uploads it through
// fs/store's uploader (one Put or a resumable multipart upload, verified,
// rclone's mtime and mode metadata); fsync returns once the object is in
// the store, close too unless WriteOptions.WriteBack delays the upload.
// mkdir stores a "dir/" marker; rmdir deletes it, ENOTEMPTY while any key
// or staged file is below; unlink deletes the object. A file is renamed by
// storing its bytes at the new key, then deleting the old key, both
// journaled first; a directory rename is EXDEV (mv then copies), chmod and
// utimes of a directory change nothing (markers keep no attributes).
// Metadata caches of the keys touched are invalidated on each change; a
// staged file shadows the store's listing of its name. Staged copies are
// kept until unlink, rename-over or unmount.
//
// Crash. Mounting again with the same staging directory completes, before
// serving, every journal entry: uploads first, then the deletions of
// renamed and removed files, so a crash in between leaves both names,
// never neither. Anything closed or fsynced survives the mount process.
//
// Conflict rule. Before an upload the key is stat'ed. If the object there
// is no longer the base version (or exists although the file was created
// here), the store's object is left as it is and the local bytes are
// stored at the sibling key "<key>.conflict-<UTC time>", with a warning
// naming both; the open file moves to that key. An object already holding
// the staged bytes (an upload finished just before a crash) is taken as
// done, and an object deleted from the store gets the local bytes. Neither
// version is ever dropped.
//
// Memory. The process stays within the block cache's memory tier plus
// Options.MemoryOverhead: every buffer that can grow with the load is
// bounded by a semaphore (blocks fetched at once, bytes read ahead, FUSE
// request bytes in flight), none by the number of open files.
package mount
