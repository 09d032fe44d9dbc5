-- Schema version 1: the block index.
--
-- Design goal: at most 400 bytes of database per file for a folder of 1,000,000 files, with
-- the local index AND one peer's index of that folder stored (the whole file, measured after
-- a WAL checkpoint; `cargo bench --bench db_size` prints the figure). Everything below is
-- shaped by that goal and by the two hot paths: the scanner's bulk writes and its warm
-- rescan (`scan_state`), which reads every local entry of a folder.
--
-- Size rules used throughout:
-- * Small integers instead of repeated strings and IDs: folders, devices and names are
--   interned once and referred to by `idx`. SQLite stores the integers 0 and 1 in the record
--   header alone and others in 1 to 8 bytes, so an idx under 8 M costs at most 3 bytes.
-- * NULL for an absent optional field: one header byte, no body.
-- * Keyed tables are WITHOUT ROWID so the key is stored once (not as a rowid table plus an
--   index holding the same columns again).
-- * u64 values (sizes, sequences, inodes, index IDs, short IDs) are stored bit-cast to
--   i64: real values are small and positive, and a peer's u64::MAX still round-trips.
-- * No foreign keys: every write goes through the code in src/db/store.rs, which keeps the
--   references right inside one transaction; foreign-key checks would cost a lookup per
--   row on the bulk path and need extra indexes (files.name) that cost bytes per file.

-- Shared folders, by the folder ID of the config ("abcde-fghij"). Deleting a folder's rows
-- is `store::drop_folder`.
CREATE TABLE folders (
    idx       INTEGER PRIMARY KEY,
    folder_id TEXT NOT NULL UNIQUE
);

-- Devices that appear anywhere in the index. idx 0 is always the local device (written
-- when the database is made, and checked at every open: a home whose identity changed must
-- not read another device's entries as its own).
--
-- Version vectors and `files.modified_by` refer to devices by idx (1 byte) instead of the
-- 8-byte short ID. A vector may name a device we have never seen (a peer of a peer): such a
-- device gets a row with its short ID only and `device_id` NULL; the full ID is filled in
-- if that device ever becomes known. `short_id` is the first 8 bytes of the device ID as a
-- big-endian u64, stored bit-cast to i64.
CREATE TABLE devices (
    idx       INTEGER PRIMARY KEY,
    short_id  INTEGER NOT NULL UNIQUE,
    device_id BLOB UNIQUE
);

-- Relative paths, interned: the local entry and every peer's entry of a name share one
-- row, and the block map refers to a name by idx. A name never referred to any more is
-- removed by the bulk operations that can orphan many at once (dropping a folder or a
-- peer's index); single updates never orphan a name (a deletion leaves a tombstone).
CREATE TABLE names (
    idx  INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- One row per (folder, device, name): the local device's entries (device 0) and what we
-- hold of each peer's index. Column by column:
-- * type: FileType::code (0 file, 1 dir, 2 symlink); deleted: 0/1 (both cost no body byte).
-- * size, permissions, modified_ns: as in FileInfo.
-- * modified_by: devices.idx of FileInfo::modified_by.
-- * version: the version vector, as varint pairs (devices.idx, counter) in the vector's
--   order (see src/db/codec.rs): 6 bytes for a typical one-device vector instead of 16.
-- * sequence: the owning device's sequence number of this entry.
-- * block: the blocks of a file with exactly one block, inline: its 32-byte hash, or
--   hash + u32 LE size (36 bytes) in the odd case where that block's size is not the file
--   size. Most files are small and have one block; a row in `blocklists` (its hash is
--   another 32 bytes, plus an index entry) would cost more than storing the hash twice.
-- * blocklist: blocklists.idx for files of two or more blocks; both NULL for no blocks.
-- * symlink_target: NULL when empty.
-- * inode, ctime_ns: local entries only (NULL for peers): the change token that lets a warm
--   rescan skip a file whose inode, size, mtime and ctime are unchanged without reading it.
-- The primary key (folder, device, name idx) makes "this device's entry of this name" one
-- B-tree probe; names interned in walk order get increasing idx values, so a bulk load
-- appends to the table instead of splitting pages all over it.
CREATE TABLE files (
    folder         INTEGER NOT NULL,
    device         INTEGER NOT NULL,
    name           INTEGER NOT NULL,
    type           INTEGER NOT NULL,
    deleted        INTEGER NOT NULL,
    size           INTEGER NOT NULL,
    permissions    INTEGER NOT NULL,
    modified_ns    INTEGER NOT NULL,
    modified_by    INTEGER NOT NULL,
    version        BLOB NOT NULL,
    sequence       INTEGER NOT NULL,
    block          BLOB,
    blocklist      INTEGER,
    symlink_target TEXT,
    inode          INTEGER,
    ctime_ns       INTEGER,
    PRIMARY KEY (folder, device, name)
) WITHOUT ROWID;

-- "Local changes since sequence N", in order: what the index exchange sends a peer. Only
-- local entries need it (a peer's sequence numbers are only ever compared with the maximum
-- kept in `indexes`), so the index is partial and costs nothing for peers' rows. Queries
-- must say `device = 0` literally for SQLite to use it.
CREATE INDEX files_local_sequence ON files (folder, sequence) WHERE device = 0;

-- Which files refer to a block list: makes "is this list still used?" one probe, so a list
-- is deleted as soon as its last file changes. Partial: single-block and empty files (the
-- vast majority) have no entry here.
CREATE INDEX files_blocklist ON files (blocklist) WHERE blocklist IS NOT NULL;

-- Block lists of files with two or more blocks, deduplicated by content: the local entry
-- and a peer's entry of the same content share one row. `hash` is
-- protocol::file::blocks_hash of the list, which is also how the wire will name a list the
-- receiver already holds (a big file's new version sent as a delta against it). `data` is
-- the list as 36-byte records, the block's 32-byte hash then its size as u32 little-endian:
-- exactly the bytes blocks_hash hashes, fixed-width so the block at index i is found
-- without decoding the ones before it.
CREATE TABLE blocklists (
    idx  INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    data BLOB NOT NULL
);

-- Where the local device holds a block: hash prefix -> (folder, name, offset). Only local,
-- non-deleted entries have rows: it answers "which local file holds a block with this
-- hash?" for the puller (renames and copies then cost no transfer). The key is
-- BlockHash::prefix_key (8 bytes) rather than the full hash (32): a prefix collision only
-- costs the reader a comparison against the block list, which it reads anyway to learn the
-- block's size. Everything is in the key, so the table is one B-tree with no row bodies.
CREATE TABLE blockmap (
    hash_prefix INTEGER NOT NULL,
    folder      INTEGER NOT NULL,
    name        INTEGER NOT NULL,
    offset      INTEGER NOT NULL,
    PRIMARY KEY (hash_prefix, folder, name, offset)
) WITHOUT ROWID;

-- Per folder and device: the index ID (random 64 bits naming one incarnation of that
-- device's index of that folder) and the highest sequence number held. The local device's
-- row is made with the folder's first write, with a fresh random index ID, so a database
-- that was reset announces a new index ID and peers send us a full index again. For a
-- peer, it records which of their indexes we hold and how far: a different index ID from
-- that peer drops what we held of it.
CREATE TABLE indexes (
    folder       INTEGER NOT NULL,
    device       INTEGER NOT NULL,
    index_id     INTEGER NOT NULL,
    max_sequence INTEGER NOT NULL,
    PRIMARY KEY (folder, device)
) WITHOUT ROWID;
