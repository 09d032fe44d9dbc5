//! The index's SQL as plain functions over a `rusqlite::Connection`.
//!
//! Everything that reads or writes the schema lives here, so that it can be tested on a
//! `:memory:` connection without threads; `Db` (the writer thread) and `Reader` are thin
//! layers over these functions. Write functions expect to run inside a transaction that
//! their caller opens and commits (one per batch of commands); they never commit on their
//! own. Prepared statements are cached on the connection (`prepare_cached`), which is what
//! makes per-file statements cheap enough for bulk loads.
//!
//! Integers that are u64 in Rust are stored bit-cast to i64 (see the schema's comments).

use super::codec;
use super::{BlockLocation, DbError, LocalChange, ScanState, ScanStates};
use crate::identity::{DeviceId, ShortId};
use crate::protocol::{BlockHash, BlockInfo, Counter, FileInfo, FileType, Vector};
use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::{HashMap, HashSet};

/// The schema version this build writes; `PRAGMA user_version` of an up-to-date database.
pub const SCHEMA_VERSION: i64 = 1;

/// Migrations in order: `(version it brings the database to, SQL)`. A database at version
/// N gets every migration above N, all in one transaction.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("schema/0001_initial.sql"))];

/// The local device's `devices.idx`, fixed so that local rows need no lookup.
pub const LOCAL: i64 = 0;

/// How many local entries to group before the caller (or a bench) commits; exposed so the
/// scanner and tests batch the same way. Not a limit: commands may hold more.
pub const SUGGESTED_BATCH: usize = 1000;

fn to_i64(v: u64) -> i64 {
    v as i64
}

fn to_u64(v: i64) -> u64 {
    v as u64
}

fn path_of(conn: &Connection) -> String {
    match conn.path() {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => ":memory:".to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Opening: connection settings, migrations, checks, the local device.

/// Settings every connection to the index needs, writer or reader.
pub fn configure(conn: &Connection) -> Result<(), DbError> {
    // Query planner stability: without it, SQLite re-prepares a statement whenever a
    // parameter it compared against a partial index's WHERE clause is bound to a new value
    // (measured: half the writer's time went into re-parsing the same few statements).
    // Our queries that need a partial index say `device = 0` literally, so nothing is lost.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Brings the schema to `SCHEMA_VERSION`, in one transaction; refuses a newer database.
pub fn migrate(conn: &Connection) -> Result<(), DbError> {
    let found = user_version(conn)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    refuse_newer(conn, found)?;
    if found == 0 {
        // Lets drops give space back to the file system (`PRAGMA incremental_vacuum` after
        // them) at the cost of one pointer map page per ~800 pages. Only takes effect
        // before the first page is written: `Db::open` also sets it before WAL mode.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    // Another process may have migrated while we waited for the write lock.
    if user_version(conn)? == SCHEMA_VERSION {
        conn.execute_batch("COMMIT")?;
        return Ok(());
    }
    let result = migrate_in_transaction(conn);
    match result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(_) => {
            // The migration's own error is the one worth reporting.
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    result
}

fn migrate_in_transaction(conn: &Connection) -> Result<(), DbError> {
    // Read again under the write lock: another process may have migrated meanwhile.
    let found = user_version(conn)?;
    refuse_newer(conn, found)?;
    if found == 0 {
        let tables = table_count(conn)?;
        if tables != 0 {
            return Err(DbError::Damaged(format!(
                "schema version 0 but {tables} tables: this is not a shoal index"
            )));
        }
    }
    for (version, sql) in MIGRATIONS {
        if *version > found {
            conn.execute_batch(sql)?;
        }
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}

fn refuse_newer(conn: &Connection, found: i64) -> Result<(), DbError> {
    if found < 0 {
        return Err(DbError::Damaged(format!("negative schema version {found}")));
    }
    if found > SCHEMA_VERSION {
        return Err(DbError::NewerSchema {
            path: path_of(conn),
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// How many tables, indexes and views the database holds (0: a new, empty file).
pub fn table_count(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?)
}

pub fn user_version(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Verifies a connection's database before use: the version is this build's, every page
/// is readable (`PRAGMA quick_check`), and the tables this build needs are there. A damaged
/// file is then refused at open, not half-way through a scan.
pub fn check(conn: &Connection) -> Result<(), DbError> {
    let version = user_version(conn)?;
    refuse_newer(conn, version)?;
    if version < SCHEMA_VERSION {
        return Err(DbError::Damaged(format!(
            "schema version {version}, expected {SCHEMA_VERSION}"
        )));
    }
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    if problems.len() != 1 || problems[0] != "ok" {
        let mut detail = problems.into_iter().take(3).collect::<Vec<_>>().join("; ");
        if detail.is_empty() {
            detail = "quick_check returned nothing".into();
        }
        return Err(DbError::Damaged(detail));
    }
    for table in [
        "folders",
        "devices",
        "names",
        "files",
        "blocklists",
        "blockmap",
        "indexes",
    ] {
        conn.prepare(&format!("SELECT * FROM {table} LIMIT 1"))
            .map_err(|e| DbError::Damaged(format!("table {table:?} is unreadable: {e}")))?;
    }
    Ok(())
}

/// Records the local device as `devices.idx` 0 in a new database, or checks that an
/// existing one belongs to it.
pub fn init_local(conn: &Connection, local: DeviceId) -> Result<(), DbError> {
    let row: Option<Option<Vec<u8>>> = conn
        .query_row("SELECT device_id FROM devices WHERE idx = 0", [], |r| {
            r.get(0)
        })
        .optional()?;
    let row = match row {
        None => {
            // OR IGNORE: another process opening the same new database may insert first.
            conn.execute(
                "INSERT OR IGNORE INTO devices (idx, short_id, device_id) VALUES (0, ?1, ?2)",
                params![to_i64(local.short().0), &local.as_bytes()[..]],
            )?;
            conn.query_row("SELECT device_id FROM devices WHERE idx = 0", [], |r| {
                r.get(0)
            })
            .optional()?
        }
        some => some,
    };
    match row {
        None => {
            return Err(DbError::Failed(
                "the local device row could not be stored".into(),
            ));
        }
        Some(Some(bytes)) if bytes.as_slice() == local.as_bytes() => {}
        Some(stored) => {
            return Err(DbError::WrongDevice {
                path: path_of(conn),
                stored: stored
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(|b| DeviceId::from_bytes(b).to_string())
                    .unwrap_or_else(|| "(unknown)".into()),
                local: local.to_string(),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Interning: folders, names, devices.

fn folder_idx(conn: &Connection, folder: &str) -> Result<Option<i64>, DbError> {
    Ok(conn
        .prepare_cached("SELECT idx FROM folders WHERE folder_id = ?1")?
        .query_row([folder], |r| r.get(0))
        .optional()?)
}

/// The folder's idx, creating it (and the local index with a fresh random index ID) if new.
fn ensure_folder(conn: &Connection, folder: &str) -> Result<i64, DbError> {
    if folder.is_empty() {
        return Err(DbError::Invalid("a folder ID must not be empty".into()));
    }
    if let Some(idx) = folder_idx(conn, folder)? {
        return Ok(idx);
    }
    conn.prepare_cached("INSERT INTO folders (folder_id) VALUES (?1)")?
        .execute([folder])?;
    let idx = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO indexes (folder, device, index_id, max_sequence) VALUES (?1, 0, ?2, 0)",
    )?
    .execute(params![idx, to_i64(random_index_id())])?;
    Ok(idx)
}

/// A random non-zero 64-bit index ID.
fn random_index_id() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // The system RNG failing is near impossible; an ID that differs from the last
        // incarnation's is all that matters, and the clock and process give that.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut h = blake3::Hasher::new();
        h.update(&nanos.to_le_bytes());
        h.update(&std::process::id().to_le_bytes());
        b.copy_from_slice(&h.finalize().as_bytes()[..8]);
    }
    u64::from_le_bytes(b).max(1)
}

/// Registers a folder (if new) and returns the local index ID of it.
pub fn add_folder(conn: &Connection, folder: &str) -> Result<u64, DbError> {
    let idx = ensure_folder(conn, folder)?;
    index_row(conn, idx, LOCAL)?
        .map(|(id, _)| id)
        .ok_or_else(|| DbError::Damaged(format!("folder {folder:?} has no local index row")))
}

fn name_idx(conn: &Connection, name: &str) -> Result<Option<i64>, DbError> {
    Ok(conn
        .prepare_cached("SELECT idx FROM names WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

/// Interns a name the caller just found missing.
fn insert_name(conn: &Connection, name: &str) -> Result<i64, DbError> {
    if name.is_empty() {
        return Err(DbError::Invalid("a file entry has an empty name".into()));
    }
    conn.prepare_cached("INSERT INTO names (name) VALUES (?1)")?
        .execute([name])?;
    Ok(conn.last_insert_rowid())
}

/// The idx of a device known by its full ID, if it has a row.
fn device_idx(conn: &Connection, device: DeviceId) -> Result<Option<i64>, DbError> {
    Ok(conn
        .prepare_cached("SELECT idx FROM devices WHERE device_id = ?1")?
        .query_row([&device.as_bytes()[..]], |r| r.get(0))
        .optional()?)
}

/// The idx of a device known by its full ID, creating its row or completing a row that
/// knew only its short ID.
fn ensure_device(conn: &Connection, device: DeviceId) -> Result<i64, DbError> {
    let short = to_i64(device.short().0);
    let row: Option<(i64, Option<Vec<u8>>)> = conn
        .prepare_cached("SELECT idx, device_id FROM devices WHERE short_id = ?1")?
        .query_row([short], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        Some((idx, Some(bytes))) if bytes.as_slice() == device.as_bytes() => Ok(idx),
        Some((_, Some(bytes))) => Err(DbError::ShortIdClash {
            known: <[u8; 32]>::try_from(bytes)
                .map(|b| DeviceId::from_bytes(b).to_string())
                .unwrap_or_else(|_| "(unreadable)".into()),
            new: device.to_string(),
        }),
        Some((idx, None)) => {
            conn.prepare_cached("UPDATE devices SET device_id = ?1 WHERE idx = ?2")?
                .execute(params![&device.as_bytes()[..], idx])?;
            Ok(idx)
        }
        None => {
            conn.prepare_cached("INSERT INTO devices (short_id, device_id) VALUES (?1, ?2)")?
                .execute(params![short, &device.as_bytes()[..]])?;
            Ok(conn.last_insert_rowid())
        }
    }
}

/// Short ID <-> idx for one command: the devices table is tiny and the same few devices
/// appear in every vector, so a per-call map saves a lookup per counter without any cache
/// that could outlive a rolled-back transaction.
struct Devices<'c> {
    conn: &'c Connection,
    idx_of: HashMap<ShortId, i64>,
    short_of: HashMap<i64, ShortId>,
}

impl<'c> Devices<'c> {
    fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            idx_of: HashMap::new(),
            short_of: HashMap::new(),
        }
    }

    fn remember(&mut self, idx: i64, short: ShortId) {
        self.idx_of.insert(short, idx);
        self.short_of.insert(idx, short);
    }

    /// The idx of a short ID, adding a short-ID-only row for a device never seen.
    fn idx_for_write(&mut self, short: ShortId) -> Result<i64, DbError> {
        if let Some(&idx) = self.idx_of.get(&short) {
            return Ok(idx);
        }
        let found: Option<i64> = self
            .conn
            .prepare_cached("SELECT idx FROM devices WHERE short_id = ?1")?
            .query_row([to_i64(short.0)], |r| r.get(0))
            .optional()?;
        let idx = match found {
            Some(idx) => idx,
            None => {
                self.conn
                    .prepare_cached("INSERT INTO devices (short_id) VALUES (?1)")?
                    .execute([to_i64(short.0)])?;
                self.conn.last_insert_rowid()
            }
        };
        self.remember(idx, short);
        Ok(idx)
    }

    fn short(&mut self, idx: i64) -> Result<ShortId, DbError> {
        if let Some(&short) = self.short_of.get(&idx) {
            return Ok(short);
        }
        let short: i64 = self
            .conn
            .prepare_cached("SELECT short_id FROM devices WHERE idx = ?1")?
            .query_row([idx], |r| r.get(0))
            .optional()?
            .ok_or_else(|| DbError::Damaged(format!("no device with idx {idx}")))?;
        let short = ShortId(to_u64(short));
        self.remember(idx, short);
        Ok(short)
    }

    fn encode_vector(&mut self, v: &Vector) -> Result<Vec<u8>, DbError> {
        let mut pairs = Vec::with_capacity(v.counters().len());
        for c in v.counters() {
            pairs.push((self.idx_for_write(c.id)?, c.value));
        }
        codec::encode_vector(pairs)
    }

    fn decode_vector(&mut self, blob: &[u8]) -> Result<Vector, DbError> {
        let mut counters = Vec::with_capacity(2);
        for (idx, value) in codec::decode_vector(blob)? {
            counters.push(Counter {
                id: self.short(idx)?,
                value,
            });
        }
        Ok(Vector::from_counters(counters))
    }
}

// ---------------------------------------------------------------------------------------
// Blocks.

/// A file's blocks in their stored form.
struct StoredBlocks {
    /// The inline form of a single-block file.
    block: Option<Vec<u8>>,
    /// `(blocks_hash, data)` of a list of two or more blocks.
    list: Option<(BlockHash, Vec<u8>)>,
}

impl StoredBlocks {
    fn of(info: &FileInfo) -> Self {
        match info.blocks.as_slice() {
            [] => Self {
                block: None,
                list: None,
            },
            [one] => Self {
                block: Some(codec::encode_single(one, info.size)),
                list: None,
            },
            blocks => {
                let data = codec::encode_list(blocks);
                let hash = BlockHash(*blake3::hash(&data).as_bytes());
                Self {
                    block: None,
                    list: Some((hash, data)),
                }
            }
        }
    }
}

/// The blocklists.idx of a list, storing it if no file holds it yet.
fn store_list(conn: &Connection, hash: &BlockHash, data: &[u8]) -> Result<i64, DbError> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT idx FROM blocklists WHERE hash = ?1")?
        .query_row([&hash.0[..]], |r| r.get(0))
        .optional()?;
    if let Some(idx) = found {
        return Ok(idx);
    }
    conn.prepare_cached("INSERT INTO blocklists (hash, data) VALUES (?1, ?2)")?
        .execute(params![&hash.0[..], data])?;
    Ok(conn.last_insert_rowid())
}

fn list_data(conn: &Connection, idx: i64) -> Result<Vec<u8>, DbError> {
    conn.prepare_cached("SELECT data FROM blocklists WHERE idx = ?1")?
        .query_row([idx], |r| r.get(0))
        .optional()?
        .ok_or_else(|| DbError::Damaged(format!("block list {idx} is missing")))
}

/// Deletes the block lists among `candidates` that no file refers to any more.
fn collect_lists(conn: &Connection, candidates: &[i64]) -> Result<(), DbError> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM blocklists WHERE idx = ?1 \
         AND NOT EXISTS (SELECT 1 FROM files WHERE blocklist = ?1)",
    )?;
    for &idx in candidates {
        stmt.execute([idx])?;
    }
    Ok(())
}

/// Deletes every block list and name no file refers to: after bulk deletions.
fn collect_all(conn: &Connection) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM blocklists WHERE NOT EXISTS \
         (SELECT 1 FROM files WHERE files.blocklist = blocklists.idx)",
        [],
    )?;
    conn.execute(
        "DELETE FROM names WHERE idx NOT IN (SELECT name FROM files)",
        [],
    )?;
    Ok(())
}

/// `(hash prefix, offset)` of each block, as the block map keys them.
fn block_keys(blocks: &[BlockInfo]) -> Vec<(i64, i64)> {
    let mut offset = 0u64;
    blocks
        .iter()
        .map(|b| {
            let key = (b.hash.prefix_key(), to_i64(offset));
            offset += u64::from(b.size);
            key
        })
        .collect()
}

fn blockmap_insert(
    conn: &Connection,
    folder: i64,
    name: i64,
    keys: &[(i64, i64)],
) -> Result<(), DbError> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO blockmap (hash_prefix, folder, name, offset) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for &(prefix, offset) in keys {
        stmt.execute(params![prefix, folder, name, offset])?;
    }
    Ok(())
}

fn blockmap_delete(
    conn: &Connection,
    folder: i64,
    name: i64,
    keys: &[(i64, i64)],
) -> Result<(), DbError> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM blockmap WHERE hash_prefix = ?1 AND folder = ?2 AND name = ?3 \
         AND offset = ?4",
    )?;
    for &(prefix, offset) in keys {
        stmt.execute(params![prefix, folder, name, offset])?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Writing entries.

/// The stored row of an entry, as much as writes need to compare and replace it.
struct Current {
    file_type: i64,
    deleted: bool,
    size: i64,
    permissions: i64,
    modified_ns: i64,
    modified_by: i64,
    version: Vec<u8>,
    block: Option<Vec<u8>>,
    blocklist: Option<i64>,
    list_hash: Option<Vec<u8>>,
    symlink_target: Option<String>,
    inode: Option<i64>,
    ctime_ns: Option<i64>,
}

impl Current {
    /// The name's idx (if interned) and the local entry of it (if any), in one probe of
    /// each table: the bulk path runs this once per file.
    fn load_local(
        conn: &Connection,
        folder: i64,
        name: &str,
    ) -> Result<Option<(i64, Option<Self>)>, DbError> {
        Ok(conn
            .prepare_cached(
                "SELECT n.idx, f.type, f.deleted, f.size, f.permissions, f.modified_ns, \
                 f.modified_by, f.version, f.block, f.blocklist, bl.hash, f.symlink_target, \
                 f.inode, f.ctime_ns \
                 FROM names n \
                 LEFT JOIN files f ON f.folder = ?1 AND f.device = 0 AND f.name = n.idx \
                 LEFT JOIN blocklists bl ON bl.idx = f.blocklist \
                 WHERE n.name = ?2",
            )?
            .query_row(params![folder, name], |r| {
                let idx: i64 = r.get(0)?;
                let Some(file_type) = r.get::<_, Option<i64>>(1)? else {
                    return Ok((idx, None));
                };
                Ok((
                    idx,
                    Some(Current {
                        file_type,
                        deleted: r.get(2)?,
                        size: r.get(3)?,
                        permissions: r.get(4)?,
                        modified_ns: r.get(5)?,
                        modified_by: r.get(6)?,
                        version: r.get(7)?,
                        block: r.get(8)?,
                        blocklist: r.get(9)?,
                        list_hash: r.get(10)?,
                        symlink_target: r.get(11)?,
                        inode: r.get(12)?,
                        ctime_ns: r.get(13)?,
                    }),
                ))
            })
            .optional()?)
    }

    /// `FileInfo::same_contents`, against the stored form.
    fn same_contents(&self, info: &FileInfo, blocks: &StoredBlocks) -> bool {
        self.file_type == i64::from(info.file_type.code())
            && self.deleted == info.deleted
            && self.size == to_i64(info.size)
            && self.permissions == i64::from(info.permissions)
            && self.modified_ns == info.modified_ns
            && self.block == blocks.block
            && self.list_hash.as_deref() == blocks.list.as_ref().map(|(h, _)| &h.0[..])
            && self.symlink_target.as_deref().unwrap_or("") == info.symlink_target
    }

    /// Same stored blocks (so the block map needs no change).
    fn same_blocks(&self, blocks: &StoredBlocks) -> bool {
        self.block == blocks.block
            && self.list_hash.as_deref() == blocks.list.as_ref().map(|(h, _)| &h.0[..])
    }

    /// The block map keys of this entry (none for a tombstone).
    fn block_keys(&self, conn: &Connection) -> Result<Vec<(i64, i64)>, DbError> {
        if self.deleted {
            return Ok(Vec::new());
        }
        if let Some(block) = &self.block {
            let b = codec::decode_single(block, to_u64(self.size))?;
            return Ok(vec![(b.hash.prefix_key(), 0)]);
        }
        if let Some(idx) = self.blocklist {
            return Ok(block_keys(&codec::decode_list(&list_data(conn, idx)?)?));
        }
        Ok(Vec::new())
    }
}

/// One row to write into `files`.
struct NewRow<'a> {
    folder: i64,
    device: i64,
    name: i64,
    info: &'a FileInfo,
    modified_by: i64,
    version: &'a [u8],
    sequence: i64,
    block: Option<&'a [u8]>,
    blocklist: Option<i64>,
    inode: Option<i64>,
    ctime_ns: Option<i64>,
}

fn upsert(conn: &Connection, row: &NewRow<'_>) -> Result<(), DbError> {
    let symlink = (!row.info.symlink_target.is_empty()).then_some(row.info.symlink_target.as_str());
    conn.prepare_cached(
        "INSERT INTO files (folder, device, name, type, deleted, size, permissions, \
         modified_ns, modified_by, version, sequence, block, blocklist, symlink_target, \
         inode, ctime_ns) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
         ON CONFLICT (folder, device, name) DO UPDATE SET type = excluded.type, \
         deleted = excluded.deleted, size = excluded.size, \
         permissions = excluded.permissions, modified_ns = excluded.modified_ns, \
         modified_by = excluded.modified_by, version = excluded.version, \
         sequence = excluded.sequence, block = excluded.block, \
         blocklist = excluded.blocklist, symlink_target = excluded.symlink_target, \
         inode = excluded.inode, ctime_ns = excluded.ctime_ns",
    )?
    .execute(params![
        row.folder,
        row.device,
        row.name,
        row.info.file_type.code(),
        row.info.deleted,
        to_i64(row.info.size),
        row.info.permissions,
        row.info.modified_ns,
        row.modified_by,
        row.version,
        row.sequence,
        row.block,
        row.blocklist,
        symlink,
        row.inode,
        row.ctime_ns,
    ])?;
    Ok(())
}

fn index_row(conn: &Connection, folder: i64, device: i64) -> Result<Option<(u64, u64)>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT index_id, max_sequence FROM indexes WHERE folder = ?1 AND device = ?2",
        )?
        .query_row(params![folder, device], |r| {
            Ok((to_u64(r.get(0)?), to_u64(r.get(1)?)))
        })
        .optional()?)
}

fn set_max_sequence(conn: &Connection, folder: i64, device: i64, max: u64) -> Result<(), DbError> {
    conn.prepare_cached("UPDATE indexes SET max_sequence = ?1 WHERE folder = ?2 AND device = ?3")?
        .execute(params![to_i64(max), folder, device])?;
    Ok(())
}

/// Where a new local entry's version comes from.
#[derive(Clone, Copy)]
enum Origin {
    /// Found by the scanner: a new version made by this device at `now_secs`.
    Scan { now_secs: u64 },
    /// Pulled from a peer: the entry's own version and author are kept.
    Pulled,
}

/// Records what the scanner found. For each change, in order: an entry whose contents are
/// unchanged only gets its inode and ctime refreshed; anything else becomes a new version
/// (the old one bumped with the local device's counter at `now_secs`) with the folder's next
/// local sequence number. Deleting a name with no entry, or an already deleted one, does
/// nothing. Returns the entries stored as new versions, with version and sequence.
pub fn update_local(
    conn: &Connection,
    folder: &str,
    changes: Vec<LocalChange>,
    now_secs: u64,
) -> Result<Vec<FileInfo>, DbError> {
    write_local(conn, folder, changes, Origin::Scan { now_secs })
}

/// Makes each given entry the local entry exactly as it is, version and author included
/// (a file pulled from a peer), with a new local sequence number. An entry identical to
/// the stored one (version included) only refreshes inode and ctime.
pub fn apply_pulled(
    conn: &Connection,
    folder: &str,
    changes: Vec<LocalChange>,
) -> Result<Vec<FileInfo>, DbError> {
    write_local(conn, folder, changes, Origin::Pulled)
}

fn write_local(
    conn: &Connection,
    folder: &str,
    changes: Vec<LocalChange>,
    origin: Origin,
) -> Result<Vec<FileInfo>, DbError> {
    let folder = ensure_folder(conn, folder)?;
    let (_, start) = index_row(conn, folder, LOCAL)?
        .ok_or_else(|| DbError::Damaged(format!("folder {folder} has no local index row")))?;
    let mut sequence = start;
    let mut devices = Devices::new(conn);
    let local_short = devices.short(LOCAL)?;
    let mut stored = Vec::new();
    let mut orphan_lists = Vec::new();

    for change in changes {
        let LocalChange {
            mut info,
            inode,
            ctime_ns,
        } = change;
        let (name, current) = match Current::load_local(conn, folder, &info.name)? {
            Some(found) => found,
            // Deleting a name never seen is a no-op: don't intern it.
            None if info.deleted && matches!(origin, Origin::Scan { .. }) => continue,
            None => (insert_name(conn, &info.name)?, None),
        };
        let blocks = StoredBlocks::of(&info);
        let (inode, ctime_ns) = (to_i64(inode), ctime_ns);

        let (version, version_blob, modified_by) = match origin {
            Origin::Scan { now_secs } => {
                if info.deleted && current.as_ref().is_none_or(|c| c.deleted) {
                    continue;
                }
                if let Some(c) = &current
                    && c.same_contents(&info, &blocks)
                {
                    refresh_token(conn, folder, name, c, inode, ctime_ns)?;
                    continue;
                }
                let old = match &current {
                    Some(c) => devices.decode_vector(&c.version)?,
                    None => Vector::new(),
                };
                let new = old.updated(local_short, now_secs);
                let blob = devices.encode_vector(&new)?;
                (new, blob, local_short)
            }
            Origin::Pulled => {
                let version = devices.encode_vector(&info.version)?;
                let by = devices.idx_for_write(info.modified_by)?;
                if let Some(c) = &current
                    && c.same_contents(&info, &blocks)
                    && c.version == version
                    && c.modified_by == by
                {
                    refresh_token(conn, folder, name, c, inode, ctime_ns)?;
                    continue;
                }
                (info.version.clone(), version, info.modified_by)
            }
        };
        let modified_by_idx = devices.idx_for_write(modified_by)?;
        sequence += 1;

        let blocklist = match &blocks.list {
            Some((hash, data)) => Some(store_list(conn, hash, data)?),
            None => None,
        };
        upsert(
            conn,
            &NewRow {
                folder,
                device: LOCAL,
                name,
                info: &info,
                modified_by: modified_by_idx,
                version: &version_blob,
                sequence: to_i64(sequence),
                block: blocks.block.as_deref(),
                blocklist,
                inode: Some(inode),
                ctime_ns: Some(ctime_ns),
            },
        )?;

        // The block map: unchanged blocks of a live entry keep their rows.
        let unchanged = current
            .as_ref()
            .is_some_and(|c| !c.deleted && !info.deleted && c.same_blocks(&blocks));
        if !unchanged {
            if let Some(c) = &current {
                blockmap_delete(conn, folder, name, &c.block_keys(conn)?)?;
            }
            if !info.deleted {
                blockmap_insert(conn, folder, name, &block_keys(&info.blocks))?;
            }
        }
        if let Some(old) = current.as_ref().and_then(|c| c.blocklist)
            && Some(old) != blocklist
        {
            orphan_lists.push(old);
        }

        info.version = version;
        info.modified_by = modified_by;
        info.sequence = sequence;
        stored.push(info);
    }
    if sequence != start {
        set_max_sequence(conn, folder, LOCAL, sequence)?;
    }
    collect_lists(conn, &orphan_lists)?;
    Ok(stored)
}

/// Gives the local entries of `names` the next sequence numbers, in order, changing
/// nothing else: the index exchange then sends them again (a receive-only folder's local
/// changes, held back until it becomes send-receive). Returns how many were found.
pub fn resequence_local(
    conn: &Connection,
    folder: &str,
    names: &[String],
) -> Result<usize, DbError> {
    let Some(folder) = folder_idx(conn, folder)? else {
        return Ok(0);
    };
    let (_, mut sequence) = index_row(conn, folder, LOCAL)?
        .ok_or_else(|| DbError::Damaged(format!("folder {folder} has no local index row")))?;
    let mut found = 0;
    for name in names {
        let Some(n) = name_idx(conn, name)? else {
            continue;
        };
        let changed = conn
            .prepare_cached(
                "UPDATE files SET sequence = ?1 WHERE folder = ?2 AND device = 0 AND name = ?3",
            )?
            .execute(params![to_i64(sequence + 1), folder, n])?;
        if changed > 0 {
            sequence += 1;
            found += 1;
        }
    }
    if found > 0 {
        set_max_sequence(conn, folder, LOCAL, sequence)?;
    }
    Ok(found)
}

/// Stores a new change token for an entry whose contents did not change.
fn refresh_token(
    conn: &Connection,
    folder: i64,
    name: i64,
    current: &Current,
    inode: i64,
    ctime_ns: i64,
) -> Result<(), DbError> {
    if current.inode == Some(inode) && current.ctime_ns == Some(ctime_ns) {
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE files SET inode = ?1, ctime_ns = ?2 \
         WHERE folder = ?3 AND device = 0 AND name = ?4",
    )?
    .execute(params![inode, ctime_ns, folder, name])?;
    Ok(())
}

/// Stores a peer's entries as given (their sequence numbers kept) and records how far we
/// hold that peer's index. A different `index_id` from the one stored means the peer's
/// index was reset: what we held of it is dropped first (a full index follows).
pub fn update_remote(
    conn: &Connection,
    folder: &str,
    device: DeviceId,
    index_id: u64,
    files: Vec<FileInfo>,
) -> Result<(), DbError> {
    let folder = ensure_folder(conn, folder)?;
    let dev = ensure_device(conn, device)?;
    if dev == LOCAL {
        return Err(DbError::Invalid(format!(
            "device {device} is the local device; its entries are written with update_local"
        )));
    }
    let mut max = remote_index_start(conn, folder, dev, index_id)?;
    let start = max;
    let mut devices = Devices::new(conn);
    let mut orphan_lists = Vec::new();
    for info in &files {
        // The name's idx and the block list the peer's old entry used, in one statement.
        let found: Option<(i64, Option<i64>)> = conn
            .prepare_cached(
                "SELECT n.idx, f.blocklist FROM names n \
                 LEFT JOIN files f ON f.folder = ?1 AND f.device = ?2 AND f.name = n.idx \
                 WHERE n.name = ?3",
            )?
            .query_row(params![folder, dev, &info.name], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let (name, old_list) = match found {
            Some(found) => found,
            None => (insert_name(conn, &info.name)?, None),
        };
        let blocks = StoredBlocks::of(info);
        let blocklist = match &blocks.list {
            Some((hash, data)) => Some(store_list(conn, hash, data)?),
            None => None,
        };
        let version = devices.encode_vector(&info.version)?;
        let modified_by = devices.idx_for_write(info.modified_by)?;
        upsert(
            conn,
            &NewRow {
                folder,
                device: dev,
                name,
                info,
                modified_by,
                version: &version,
                sequence: to_i64(info.sequence),
                block: blocks.block.as_deref(),
                blocklist,
                inode: None,
                ctime_ns: None,
            },
        )?;
        if let Some(old) = old_list
            && Some(old) != blocklist
        {
            orphan_lists.push(old);
        }
        max = max.max(info.sequence);
    }
    if max != start {
        set_max_sequence(conn, folder, dev, max)?;
    }
    collect_lists(conn, &orphan_lists)?;
    Ok(())
}

/// How far we hold the peer's index `index_id`; a different one from the one held means
/// the peer's index was reset: what we held of it is dropped (a full index follows).
fn remote_index_start(
    conn: &Connection,
    folder: i64,
    dev: i64,
    index_id: u64,
) -> Result<u64, DbError> {
    Ok(match index_row(conn, folder, dev)? {
        Some((id, max)) if id == index_id => max,
        held => {
            if held.is_some() {
                drop_rows(conn, folder, dev)?;
            }
            conn.prepare_cached(
                "INSERT OR REPLACE INTO indexes (folder, device, index_id, max_sequence) \
                 VALUES (?1, ?2, ?3, 0)",
            )?
            .execute(params![folder, dev, to_i64(index_id)])?;
            0
        }
    })
}

/// Records a peer's `invalid` entries ("don't take this from me": ignored or unreadable
/// there), given as (name, sequence): what we held of those names from that peer is
/// forgotten, so nothing is ever pulled, replaced or deleted because of it, and the
/// sequences count as received. (The interned names stay until a bulk clean-up.)
pub fn forget_remote_names(
    conn: &Connection,
    folder: &str,
    device: DeviceId,
    index_id: u64,
    entries: &[(String, u64)],
) -> Result<(), DbError> {
    let folder = ensure_folder(conn, folder)?;
    let dev = ensure_device(conn, device)?;
    if dev == LOCAL {
        return Err(DbError::Invalid(format!(
            "device {device} is the local device; its entries are written with update_local"
        )));
    }
    let mut max = remote_index_start(conn, folder, dev, index_id)?;
    let start = max;
    let mut orphan_lists = Vec::new();
    for (name, seq) in entries {
        if let Some(n) = name_idx(conn, name)? {
            let old: Option<Option<i64>> = conn
                .prepare_cached(
                    "SELECT blocklist FROM files WHERE folder = ?1 AND device = ?2 AND name = ?3",
                )?
                .query_row(params![folder, dev, n], |r| r.get(0))
                .optional()?;
            if let Some(list) = old {
                conn.prepare_cached(
                    "DELETE FROM files WHERE folder = ?1 AND device = ?2 AND name = ?3",
                )?
                .execute(params![folder, dev, n])?;
                orphan_lists.extend(list);
            }
        }
        max = max.max(*seq);
    }
    if max != start {
        set_max_sequence(conn, folder, dev, max)?;
    }
    collect_lists(conn, &orphan_lists)?;
    Ok(())
}

/// Deletes one device's entries of a folder (not its `indexes` row).
fn drop_rows(conn: &Connection, folder: i64, device: i64) -> Result<(), DbError> {
    conn.prepare_cached("DELETE FROM files WHERE folder = ?1 AND device = ?2")?
        .execute(params![folder, device])?;
    collect_all(conn)
}

/// Forgets what we hold of a peer's index of a folder.
pub fn drop_device_index(conn: &Connection, folder: &str, device: DeviceId) -> Result<(), DbError> {
    let (Some(folder), Some(dev)) = (folder_idx(conn, folder)?, device_idx(conn, device)?) else {
        return Ok(());
    };
    if dev == LOCAL {
        return Err(DbError::Invalid(format!(
            "device {device} is the local device; drop the whole folder instead"
        )));
    }
    drop_rows(conn, folder, dev)?;
    conn.prepare_cached("DELETE FROM indexes WHERE folder = ?1 AND device = ?2")?
        .execute(params![folder, dev])?;
    vacuum(conn)
}

/// Forgets tombstones (of every device) whose last change, the highest counter of their
/// version vector (counters follow the wall clock), is before `before_secs`. Returns how
/// many were forgotten. A device offline for longer than that may bring such a file
/// back when it returns: a resurrection, never a deletion of newer data.
pub fn forget_tombstones(conn: &Connection, before_secs: u64) -> Result<usize, DbError> {
    let mut old = Vec::new();
    {
        let mut stmt = conn
            .prepare_cached("SELECT folder, device, name, version FROM files WHERE deleted = 1")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let version: Vec<u8> = row.get(3)?;
            let last = super::codec::decode_vector(&version)?
                .into_iter()
                .map(|(_, counter)| counter)
                .max()
                .unwrap_or(0);
            if last < before_secs {
                old.push((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ));
            }
        }
    }
    let mut del =
        conn.prepare_cached("DELETE FROM files WHERE folder = ?1 AND device = ?2 AND name = ?3")?;
    for (f, d, n) in &old {
        del.execute(params![f, d, n])?;
    }
    Ok(old.len())
}

/// Forgets a folder: every device's entries, its block map and its index IDs. Adding it
/// again later makes a new local index ID, so peers send their full index again.
pub fn drop_folder(conn: &Connection, folder: &str) -> Result<(), DbError> {
    let Some(folder) = folder_idx(conn, folder)? else {
        return Ok(());
    };
    conn.execute("DELETE FROM files WHERE folder = ?1", [folder])?;
    conn.execute("DELETE FROM blockmap WHERE folder = ?1", [folder])?;
    conn.execute("DELETE FROM indexes WHERE folder = ?1", [folder])?;
    conn.execute("DELETE FROM folders WHERE idx = ?1", [folder])?;
    collect_all(conn)?;
    vacuum(conn)
}

/// Gives free pages back to the file system after a bulk deletion.
fn vacuum(conn: &Connection) -> Result<(), DbError> {
    conn.execute_batch("PRAGMA incremental_vacuum")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reading.

/// Columns `decode` reads, in its order. Needs `f` (files), `n` (names), `bl` (LEFT JOIN
/// blocklists).
const ENTRY_COLUMNS: &str = "n.name, f.type, f.deleted, f.size, f.permissions, \
     f.modified_ns, f.modified_by, f.version, f.sequence, f.block, f.blocklist, bl.data, \
     f.symlink_target";
/// How many columns `ENTRY_COLUMNS` names.
const ENTRY_COLUMN_COUNT: usize = 13;

fn file_type(code: i64) -> Result<FileType, DbError> {
    u8::try_from(code)
        .ok()
        .and_then(FileType::from_code)
        .ok_or_else(|| DbError::Damaged(format!("unknown file type {code}")))
}

fn blob<'r>(row: &'r Row<'_>, i: usize) -> Result<&'r [u8], DbError> {
    match row.get_ref(i)? {
        ValueRef::Blob(b) => Ok(b),
        other => Err(DbError::Damaged(format!(
            "column {i} holds {:?}, expected a blob",
            other.data_type()
        ))),
    }
}

fn decode(row: &Row<'_>, devices: &mut Devices<'_>) -> Result<FileInfo, DbError> {
    let name: String = row.get(0)?;
    let size = to_u64(row.get(3)?);
    let blocks = match (
        row.get_ref(9)?,
        row.get::<_, Option<i64>>(10)?,
        row.get_ref(11)?,
    ) {
        (ValueRef::Blob(b), _, _) => vec![codec::decode_single(b, size)?],
        (_, Some(_), ValueRef::Blob(data)) => codec::decode_list(data)?,
        (_, Some(idx), _) => {
            return Err(DbError::Damaged(format!(
                "block list {idx} of {name:?} is missing"
            )));
        }
        _ => Vec::new(),
    };
    Ok(FileInfo {
        file_type: file_type(row.get(1)?)?,
        deleted: row.get(2)?,
        size,
        permissions: u32::try_from(row.get::<_, i64>(4)?)
            .map_err(|_| DbError::Damaged(format!("permissions of {name:?} out of range")))?,
        modified_ns: row.get(5)?,
        modified_by: devices.short(row.get(6)?)?,
        version: devices.decode_vector(blob(row, 7)?)?,
        sequence: to_u64(row.get(8)?),
        blocks,
        symlink_target: row.get::<_, Option<String>>(12)?.unwrap_or_default(),
        name,
    })
}

/// A device's entry of a name.
pub fn get(
    conn: &Connection,
    folder: &str,
    device: DeviceId,
    name: &str,
) -> Result<Option<FileInfo>, DbError> {
    let (Some(folder), Some(dev), Some(name)) = (
        folder_idx(conn, folder)?,
        device_idx(conn, device)?,
        name_idx(conn, name)?,
    ) else {
        return Ok(None);
    };
    get_by_idx(conn, folder, dev, name)
}

/// The local entry of a name.
pub fn get_local(conn: &Connection, folder: &str, name: &str) -> Result<Option<FileInfo>, DbError> {
    let (Some(folder), Some(name)) = (folder_idx(conn, folder)?, name_idx(conn, name)?) else {
        return Ok(None);
    };
    get_by_idx(conn, folder, LOCAL, name)
}

fn get_by_idx(
    conn: &Connection,
    folder: i64,
    dev: i64,
    name: i64,
) -> Result<Option<FileInfo>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM files f JOIN names n ON n.idx = f.name \
         LEFT JOIN blocklists bl ON bl.idx = f.blocklist \
         WHERE f.folder = ?1 AND f.device = ?2 AND f.name = ?3"
    ))?;
    let mut rows = stmt.query(params![folder, dev, name])?;
    let mut devices = Devices::new(conn);
    match rows.next()? {
        Some(row) => Ok(Some(decode(row, &mut devices)?)),
        None => Ok(None),
    }
}

/// What the scanner compares against the disk, for every local entry of a folder.
pub fn scan_state(conn: &Connection, folder: &str) -> Result<ScanStates, DbError> {
    let Some(folder) = folder_idx(conn, folder)? else {
        return Ok(ScanStates::new());
    };
    // Sized up front (the count reads the small partial sequence index, not the
    // entries): growing a vector of a million entries copies it twenty times and can
    // leave twice its size allocated at the end.
    let entries: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM files INDEXED BY files_local_sequence \
             WHERE folder = ?1 AND device = 0",
        )?
        .query_row([folder], |r| r.get(0))?;
    let entries = usize::try_from(entries).unwrap_or(0);
    // Names are mostly short: 24 bytes each is a guess the text grows past if it must.
    let mut out = ScanStates::with_capacity(entries, entries.saturating_mul(24));
    let mut stmt = conn.prepare_cached(
        "SELECT n.name, f.type, f.deleted, f.size, f.permissions, f.modified_ns, f.inode, \
         f.ctime_ns, f.symlink_target \
         FROM files f JOIN names n ON n.idx = f.name WHERE f.folder = ?1 AND f.device = 0",
    )?;
    let mut rows = stmt.query([folder])?;
    while let Some(row) = rows.next()? {
        let name = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        let state = scan_row_state(row, name)?;
        out.push(name, &state);
    }
    out.finish();
    Ok(out)
}

/// `scan_state` limited to what a scan of `names` compares with: each name, everything
/// under it, and its ancestors. A watcher-triggered scan of one file in a folder of a
/// million then reads a few rows, not the million.
pub fn scan_state_within(
    conn: &Connection,
    folder: &str,
    names: &[String],
) -> Result<ScanStates, DbError> {
    let Some(folder) = folder_idx(conn, folder)? else {
        return Ok(ScanStates::new());
    };
    const COLUMNS: &str = "n.name, f.type, f.deleted, f.size, f.permissions, f.modified_ns, \
                           f.inode, f.ctime_ns, f.symlink_target";
    let mut out = ScanStates::new();
    let mut done = HashSet::new();
    let mut exact = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM names n JOIN files f ON f.name = n.idx \
         WHERE n.name = ?2 AND f.folder = ?1 AND f.device = 0"
    ))?;
    let mut under = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM names n JOIN files f ON f.name = n.idx \
         WHERE n.name >= ?2 AND n.name < ?3 AND f.folder = ?1 AND f.device = 0"
    ))?;
    let mut add = |row: &rusqlite::Row<'_>| -> Result<(), DbError> {
        let (name, state) = scan_row(row)?;
        if done.insert(name.clone()) {
            out.push(&name, &state);
        }
        Ok(())
    };
    for raw in names {
        let name = raw.trim_end_matches('/');
        let mut wanted: Vec<&str> = name.match_indices('/').map(|(i, _)| &name[..i]).collect();
        wanted.push(name);
        for n in wanted {
            let mut rows = exact.query(params![folder, n])?;
            while let Some(row) = rows.next()? {
                add(row)?;
            }
        }
        // Byte order: everything that starts with "name/" sorts from "name/" up to, not
        // including, "name0" ('0' follows '/').
        let mut rows = under.query(params![folder, format!("{name}/"), format!("{name}0")])?;
        while let Some(row) = rows.next()? {
            add(row)?;
        }
    }
    out.finish();
    Ok(out)
}

fn scan_row(row: &rusqlite::Row<'_>) -> Result<(String, ScanState), DbError> {
    let name: String = row.get(0)?;
    let state = scan_row_state(row, &name)?;
    Ok((name, state))
}

/// Columns 1.. of a scan-state row (`name` only for messages).
fn scan_row_state(row: &rusqlite::Row<'_>, name: &str) -> Result<ScanState, DbError> {
    Ok(ScanState {
        file_type: file_type(row.get(1)?)?,
        deleted: row.get(2)?,
        size: to_u64(row.get(3)?),
        permissions: u32::try_from(row.get::<_, i64>(4)?)
            .map_err(|_| DbError::Damaged(format!("permissions of {name:?} out of range")))?,
        modified_ns: row.get(5)?,
        inode: to_u64(row.get::<_, Option<i64>>(6)?.unwrap_or(0)),
        ctime_ns: row.get::<_, Option<i64>>(7)?.unwrap_or(0),
        symlink_target: row.get::<_, Option<String>>(8)?.unwrap_or_default(),
    })
}

/// Calls `f` with every local entry of a folder, in name order (byte order of the UTF-8
/// names), one at a time: nothing is collected.
pub fn for_each_local<E: From<DbError>>(
    conn: &Connection,
    folder: &str,
    f: impl FnMut(FileInfo) -> Result<(), E>,
) -> Result<(), E> {
    for_each_of(conn, folder, Some(0), f)
}

/// Every entry a peer's index holds of a folder, in name order (none when unknown).
pub fn for_each_remote<E: From<DbError>>(
    conn: &Connection,
    folder: &str,
    device: DeviceId,
    f: impl FnMut(FileInfo) -> Result<(), E>,
) -> Result<(), E> {
    let dev = device_idx(conn, device)?;
    if dev.is_none() {
        return Ok(());
    }
    for_each_of(conn, folder, dev, f)
}

fn for_each_of<E: From<DbError>>(
    conn: &Connection,
    folder: &str,
    device: Option<i64>,
    mut f: impl FnMut(FileInfo) -> Result<(), E>,
) -> Result<(), E> {
    let Some(folder) = folder_idx(conn, folder)? else {
        return Ok(());
    };
    let device = device.unwrap_or(0);
    // CROSS JOIN keeps names as the outer loop: walking the names' unique index gives the
    // order for free, where scanning files would need a sort of the whole folder.
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM names n CROSS JOIN files f \
             ON f.folder = ?1 AND f.device = ?2 AND f.name = n.idx \
             LEFT JOIN blocklists bl ON bl.idx = f.blocklist ORDER BY n.name"
        ))
        .map_err(DbError::from)?;
    let mut rows = stmt.query([folder, device]).map_err(DbError::from)?;
    let mut devices = Devices::new(conn);
    while let Some(row) = rows.next().map_err(DbError::from)? {
        f(decode(row, &mut devices)?)?;
    }
    Ok(())
}

/// What [`remote_step`] gives: peer entries each with ours, and where to continue.
pub type RemoteStep = (Vec<(FileInfo, Option<FileInfo>)>, i64);

/// A bounded step of a walk over a peer's index of a folder: up to `limit` entries whose
/// name index is greater than `after`, in name-index order (the primary key's, so each
/// step is a range read), each with our local entry of the name. Returns them and the
/// name index to continue after; fewer than `limit` entries means the walk is done.
pub fn remote_step(
    conn: &Connection,
    folder: &str,
    device: DeviceId,
    after: i64,
    limit: usize,
) -> Result<RemoteStep, DbError> {
    let (Some(folder), Some(dev)) = (folder_idx(conn, folder)?, device_idx(conn, device)?) else {
        return Ok((Vec::new(), after));
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS}, f.name FROM files f JOIN names n ON n.idx = f.name \
         LEFT JOIN blocklists bl ON bl.idx = f.blocklist \
         WHERE f.folder = ?1 AND f.device = ?2 AND f.name > ?3 ORDER BY f.name LIMIT ?4"
    ))?;
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![folder, dev, after, limit_sql])?;
    let mut devices = Devices::new(conn);
    let mut remote = Vec::new();
    let mut last = after;
    while let Some(row) = rows.next()? {
        last = row.get(ENTRY_COLUMN_COUNT)?;
        remote.push((last, decode(row, &mut devices)?));
    }
    drop(rows);
    let mut out = Vec::with_capacity(remote.len());
    for (name, r) in remote {
        let local = get_by_idx(conn, folder, LOCAL, name)?;
        out.push((r, local));
    }
    Ok((out, last))
}

/// Local entries of a folder whose version no peer's entry of the name has exactly, in
/// name order: the candidates for a receive-only folder's local changes (the caller
/// compares versions to drop those a peer has a newer one of). One probe per local entry
/// and peer, on the primary key.
pub fn local_change_candidates(conn: &Connection, folder: &str) -> Result<Vec<FileInfo>, DbError> {
    let Some(folder) = folder_idx(conn, folder)? else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM names n CROSS JOIN files f \
         ON f.folder = ?1 AND f.device = 0 AND f.name = n.idx \
         LEFT JOIN blocklists bl ON bl.idx = f.blocklist \
         WHERE NOT EXISTS (SELECT 1 FROM indexes i CROSS JOIN files r \
             ON r.folder = i.folder AND r.device = i.device AND r.name = f.name \
             WHERE i.folder = ?1 AND i.device <> 0 AND r.version = f.version) \
         ORDER BY n.name"
    ))?;
    let mut rows = stmt.query([folder])?;
    let mut devices = Devices::new(conn);
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row, &mut devices)?);
    }
    Ok(out)
}

/// Local entries with a sequence number above `after`, in sequence order, at most `limit`.
pub fn local_changes_since(
    conn: &Connection,
    folder: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<FileInfo>, DbError> {
    let Some(folder) = folder_idx(conn, folder)? else {
        return Ok(Vec::new());
    };
    // `device = 0` literally: that is what lets SQLite use the partial sequence index.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM files f JOIN names n ON n.idx = f.name \
         LEFT JOIN blocklists bl ON bl.idx = f.blocklist \
         WHERE f.folder = ?1 AND f.device = 0 AND f.sequence > ?2 \
         ORDER BY f.sequence LIMIT ?3"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![folder, to_i64(after), limit])?;
    let mut devices = Devices::new(conn);
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row, &mut devices)?);
    }
    Ok(out)
}

/// The inode and inode change time the scanner recorded with the local entry of `name`
/// (0 when unknown, as for an entry recorded "racily clean").
pub fn local_inode_ctime(
    conn: &Connection,
    folder: &str,
    name: &str,
) -> Result<Option<(u64, i64)>, DbError> {
    let (Some(folder), Some(name)) = (folder_idx(conn, folder)?, name_idx(conn, name)?) else {
        return Ok(None);
    };
    let row: Option<(Option<i64>, Option<i64>)> = conn
        .prepare_cached(
            "SELECT inode, ctime_ns FROM files WHERE folder = ?1 AND device = ?2 AND name = ?3",
        )?
        .query_row(params![folder, LOCAL, name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.map(|(inode, ctime)| (to_u64(inode.unwrap_or(0)), ctime.unwrap_or(0))))
}

/// Local files holding a block with this hash, at most `limit`. The block map is keyed by
/// a hash prefix; each candidate is checked against the full hash in its block list.
pub fn find_blocks(
    conn: &Connection,
    hash: &BlockHash,
    limit: usize,
) -> Result<Vec<BlockLocation>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT fo.folder_id, n.name, b.offset, f.size, f.block, f.blocklist, bl.data \
         FROM blockmap b \
         JOIN files f ON f.folder = b.folder AND f.device = 0 AND f.name = b.name \
         JOIN folders fo ON fo.idx = b.folder \
         JOIN names n ON n.idx = b.name \
         LEFT JOIN blocklists bl ON bl.idx = f.blocklist \
         WHERE b.hash_prefix = ?1 AND f.deleted = 0",
    )?;
    let mut rows = stmt.query([hash.prefix_key()])?;
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(row) = rows.next()? else { break };
        let offset = to_u64(row.get(2)?);
        let size = to_u64(row.get(3)?);
        let block = match (
            row.get_ref(4)?,
            row.get::<_, Option<i64>>(5)?,
            row.get_ref(6)?,
        ) {
            (ValueRef::Blob(b), _, _) if offset == 0 => Some(codec::decode_single(b, size)?),
            (_, Some(_), ValueRef::Blob(data)) => codec::list_block_at(data, offset)?,
            _ => None,
        };
        if let Some(b) = block
            && b.hash == *hash
        {
            out.push(BlockLocation {
                folder: row.get(0)?,
                name: row.get(1)?,
                offset,
                size: b.size,
            });
        }
    }
    Ok(out)
}

/// A stored block list (of a file with two or more blocks) by its `blocks_hash`.
pub fn blocklist_by_hash(
    conn: &Connection,
    hash: &BlockHash,
) -> Result<Option<Vec<BlockInfo>>, DbError> {
    let data: Option<Vec<u8>> = conn
        .prepare_cached("SELECT data FROM blocklists WHERE hash = ?1")?
        .query_row([&hash.0[..]], |r| r.get(0))
        .optional()?;
    data.map(|d| codec::decode_list(&d)).transpose()
}

/// `(files, bytes)` of the folder's live local regular files.
pub fn local_counts(conn: &Connection, folder: &str) -> Result<(u64, u64), DbError> {
    let Some(folder) = folder_idx(conn, folder)? else {
        return Ok((0, 0));
    };
    let (files, bytes): (i64, i64) = conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(size), 0) FROM files \
             WHERE folder = ?1 AND device = 0 AND deleted = 0 AND type = 0",
        )?
        .query_row([folder], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((to_u64(files), to_u64(bytes)))
}

/// `(index ID, max sequence)` of a device's index of a folder, local device included.
pub fn index_info(
    conn: &Connection,
    folder: &str,
    device: DeviceId,
) -> Result<Option<(u64, u64)>, DbError> {
    let (Some(folder), Some(dev)) = (folder_idx(conn, folder)?, device_idx(conn, device)?) else {
        return Ok(None);
    };
    index_row(conn, folder, dev)
}

/// The local index ID of a folder, if the folder is known.
pub fn local_index_id(conn: &Connection, folder: &str) -> Result<Option<u64>, DbError> {
    let Some(folder) = folder_idx(conn, folder)? else {
        return Ok(None);
    };
    Ok(index_row(conn, folder, LOCAL)?.map(|(id, _)| id))
}

/// Every folder the index holds, sorted.
pub fn folders(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT folder_id FROM folders ORDER BY folder_id")?;
    let out = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(out)
}
