//! The block index: what each device has of each folder, in one SQLite database.
//!
//! This module owns the database file: its schema and migrations (`schema/*.sql`, applied
//! in order, version in `PRAGMA user_version`), the one thread that writes it, and
//! read-only connections for everyone else. It knows nothing of the network or the disk
//! being synced: callers hand it `FileInfo`s and get `FileInfo`s back.
//!
//! - Writes go through [`Db`], a cheap clonable handle to the writer thread
//!   ("shoal-db-writer"), which owns the only write connection and runs every command
//!   already queued in one transaction. Calls block until their batch committed: from async
//!   code, call them in `spawn_blocking`.
//! - Reads go through a [`Reader`] (`Db::reader`), a read-only connection of its own; WAL
//!   mode lets it read while the writer writes, each statement seeing a committed state.
//! - [`store`] holds the SQL as plain functions over a `rusqlite::Connection`, tested on
//!   `:memory:`; `Db` and `Reader` are thin layers over it.
//!
//! It must never panic on a damaged file: opening one is a [`DbError`] that tells the user
//! to move it aside and rescan.

mod codec;
mod states;
pub mod store;
mod writer;

pub use states::ScanStates;

use crate::identity::DeviceId;
use crate::protocol::{BlockHash, BlockInfo, FileInfo, FileType};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use writer::{Command, Request};

/// How long a connection waits for another's lock before giving up with `Locked`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Page cache of the write connection, in KiB (negative `cache_size` = KiB). Bulk loads
/// touch pages of several B-trees at random (names, block map); with the 2 MiB default a
/// 1 M-file load is 2-3× slower. 32 MiB loads 200,000 files as fast as 64 MiB did
/// (bench/notes.md §17).
const WRITER_CACHE_KIB: i64 = 32768;
/// Page cache of each read connection, in KiB: SQLite's default. Readers are opened and
/// dropped all the time on many threads; big caches there cost more in the allocator's
/// fragmented arenas than they saved (pages come from the OS's page cache anyway): at
/// 200,000 files 16 MiB per reader meant a peak RSS of 260 MiB, 2 MiB 143-167 MiB, at the
/// same speed (bench/notes.md §17).
const READER_CACHE_KIB: i64 = 2048;

/// WAL pages (4 KiB) after which a commit copies the WAL back into the database. Bigger
/// than the default 1000: each checkpoint writes (and fsyncs) every page changed since the
/// last one, and a bulk load changes the block map's pages all over again in every
/// transaction, so fewer checkpoints mean fewer writes of the same pages. The WAL file is
/// truncated back to `JOURNAL_SIZE_LIMIT` after a checkpoint so it does not keep its
/// high-water mark.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 16384;
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Everything that can go wrong with the index. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "the index database \"{path}\" is damaged ({detail}); stop shoal, move it aside and run `shoal rescan` to rebuild it"
    )]
    Corrupt { path: String, detail: String },
    /// Stored data that does not decode; becomes `Corrupt` (with the path) at the `Db` and
    /// `Reader` boundary.
    #[error(
        "the index database holds data it cannot read ({0}); stop shoal, move the database aside and run `shoal rescan` to rebuild it"
    )]
    Damaged(String),
    #[error(
        "the index database \"{path}\" has schema version {found}, but this shoal only knows versions up to {known}: it was written by a newer shoal; upgrade shoal to use it"
    )]
    NewerSchema {
        path: String,
        found: i64,
        known: i64,
    },
    #[error(
        "the index database \"{path}\" belongs to device {stored}, but this home's identity is device {local}; if the identity was replaced on purpose, move the database aside and run `shoal rescan` to rebuild it"
    )]
    WrongDevice {
        path: String,
        stored: String,
        local: String,
    },
    #[error(
        "the index database \"{path}\" is locked by another process (is another shoal running with this home?); stop it and try again"
    )]
    Locked { path: String },
    #[error(
        "the disk holding the index database \"{path}\" is full; free some space and try again"
    )]
    DiskFull { path: String },
    #[error(
        "cannot open the index database \"{path}\": {source}; check that its directory exists and is writable"
    )]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "devices {known} and {new} share the 64-bit short ID that version vectors use, so the index cannot tell them apart; remove one of them from the config"
    )]
    ShortIdClash { known: String, new: String },
    /// A caller's mistake, e.g. the local device given as a peer.
    #[error("{0}")]
    Invalid(String),
    #[error("index database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The copy of an error given to the other callers of a batch that failed.
    #[error("index database error: {0}")]
    Failed(String),
    #[error("the index database writer has stopped; restart shoal (the log says why)")]
    WriterGone,
    #[error("cannot start the index database writer thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl DbError {
    /// The same error for another caller of a failed batch (SQLite errors keep their code,
    /// so `at` still classifies them).
    fn duplicate(&self) -> DbError {
        match self {
            DbError::Corrupt { path, detail } => DbError::Corrupt {
                path: path.clone(),
                detail: detail.clone(),
            },
            DbError::Damaged(d) => DbError::Damaged(d.clone()),
            DbError::Locked { path } => DbError::Locked { path: path.clone() },
            DbError::DiskFull { path } => DbError::DiskFull { path: path.clone() },
            DbError::Sql(rusqlite::Error::SqliteFailure(code, msg)) => {
                DbError::Sql(rusqlite::Error::SqliteFailure(*code, msg.clone()))
            }
            DbError::WriterGone => DbError::WriterGone,
            other => DbError::Failed(other.to_string()),
        }
    }

    /// Names the file in errors that are about it: damage, locks, a full disk.
    fn at(self, path: &Path) -> DbError {
        let path = path.display().to_string();
        match self {
            DbError::Sql(e) => match e.sqlite_error_code() {
                Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => DbError::Corrupt {
                    path,
                    detail: e.to_string(),
                },
                Some(ErrorCode::DatabaseBusy) => DbError::Locked { path },
                Some(ErrorCode::DiskFull) => DbError::DiskFull { path },
                _ => DbError::Sql(e),
            },
            DbError::Damaged(detail) => DbError::Corrupt { path, detail },
            other => other,
        }
    }
}

/// A change the scanner found: the entry as it is now on disk, and its change token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalChange {
    /// Version, sequence and modified_by are ignored by `update_local` (it makes them);
    /// `apply_pulled` keeps version and modified_by.
    pub info: FileInfo,
    /// With `ctime_ns`, lets a later scan skip the file without reading it.
    pub inode: u64,
    pub ctime_ns: i64,
}

/// What the scanner needs of a local entry to tell whether the disk changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanState {
    pub file_type: FileType,
    pub deleted: bool,
    pub size: u64,
    pub permissions: u32,
    pub modified_ns: i64,
    pub inode: u64,
    pub ctime_ns: i64,
    pub symlink_target: String,
}

/// A local file that holds a given block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockLocation {
    pub folder: String,
    pub name: String,
    pub offset: u64,
    pub size: u32,
}

/// Handle to the index. Clones share one writer thread; the last one dropped ends it.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    local: DeviceId,
    /// `None` only while dropping: closing the channel is what stops the thread.
    commands: Option<crossbeam_channel::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the index database writer thread panicked");
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        // A clock before 1970: counters still grow by one per change.
        .unwrap_or(0)
}

impl Db {
    /// Opens (creating or migrating) the index at `path` for the local device `local`,
    /// checks it, and starts the writer thread.
    pub fn open(path: &Path, local: DeviceId) -> Result<Db, DbError> {
        // Another process creating or migrating the same new database holds it for a
        // moment (some pragmas don't wait on the busy handler): retry briefly.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let conn = loop {
            match open_writer(path, local).map_err(|e| e.at(path)) {
                Err(DbError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other?,
            }
        };
        let (commands, receiver) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("shoal-db-writer".into())
            .spawn(move || writer::run(conn, receiver))
            .map_err(DbError::Thread)?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                local,
                commands: Some(commands),
                thread: Some(thread),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn local_device(&self) -> DeviceId {
        self.inner.local
    }

    /// A new read-only connection.
    pub fn reader(&self) -> Result<Reader, DbError> {
        Reader::open(&self.inner.path)
    }

    /// Runs `work` on the writer thread inside its batch transaction; returns once the
    /// batch committed.
    fn request<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        self.submit(work)?.wait()
    }

    /// Queues `work` for the writer thread without waiting for it.
    fn submit<T, F>(&self, work: F) -> Result<Pending<T>, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let job = Box::new(Request::new(work, reply));
        self.send(Command::Write(job))?;
        Ok(Pending {
            answer,
            path: self.inner.path.clone(),
        })
    }

    fn send(&self, command: Command) -> Result<(), DbError> {
        self.inner
            .commands
            .as_ref()
            .ok_or(DbError::WriterGone)?
            .send(command)
            .map_err(|_| DbError::WriterGone)
    }

    /// Registers a folder (nothing happens if it is known) and returns its local index ID.
    pub fn add_folder(&self, folder: &str) -> Result<u64, DbError> {
        let folder = folder.to_string();
        self.request(move |conn| store::add_folder(conn, &folder))
    }

    /// Records what the scanner found (see `store::update_local`); returns the entries that
    /// became new versions, with their version and sequence number.
    pub fn update_local(
        &self,
        folder: &str,
        changes: Vec<LocalChange>,
    ) -> Result<Vec<FileInfo>, DbError> {
        let folder = folder.to_string();
        self.request(move |conn| store::update_local(conn, &folder, changes, now_secs()))
    }

    /// `update_local` without waiting: the write is queued and the answer comes with
    /// `Pending::wait`. A caller that keeps a few batches in flight (a scanner hashing the
    /// next batch meanwhile) lets the writer commit everything queued in one transaction,
    /// which is far cheaper per file than one transaction per batch.
    pub fn submit_local(
        &self,
        folder: &str,
        changes: Vec<LocalChange>,
    ) -> Result<Pending<Vec<FileInfo>>, DbError> {
        let folder = folder.to_string();
        self.submit(move |conn| store::update_local(conn, &folder, changes, now_secs()))
    }

    /// Makes pulled entries the local entries, keeping their versions (see
    /// `store::apply_pulled`); returns them with their new local sequence numbers.
    pub fn apply_pulled(
        &self,
        folder: &str,
        changes: Vec<LocalChange>,
    ) -> Result<Vec<FileInfo>, DbError> {
        let folder = folder.to_string();
        self.request(move |conn| store::apply_pulled(conn, &folder, changes))
    }

    /// Stores a peer's index entries (see `store::update_remote`).
    pub fn update_remote(
        &self,
        folder: &str,
        device: DeviceId,
        index_id: u64,
        files: Vec<FileInfo>,
    ) -> Result<(), DbError> {
        let folder = folder.to_string();
        self.request(move |conn| store::update_remote(conn, &folder, device, index_id, files))
    }

    /// Gives local entries new sequence numbers (see `store::resequence_local`).
    pub fn resequence_local(&self, folder: &str, names: Vec<String>) -> Result<usize, DbError> {
        let folder = folder.to_string();
        self.request(move |conn| store::resequence_local(conn, &folder, &names))
    }

    /// Stores a peer's index entries and forgets what we held of the names it marks
    /// invalid (see `store::update_remote` and `store::forget_remote_names`), in one
    /// transaction.
    pub fn update_remote_with_invalid(
        &self,
        folder: &str,
        device: DeviceId,
        index_id: u64,
        files: Vec<FileInfo>,
        invalid: Vec<(String, u64)>,
    ) -> Result<(), DbError> {
        let folder = folder.to_string();
        self.request(move |conn| {
            store::update_remote(conn, &folder, device, index_id, files)?;
            if invalid.is_empty() {
                return Ok(());
            }
            store::forget_remote_names(conn, &folder, device, index_id, &invalid)
        })
    }

    /// `update_remote` without waiting (see `submit_local`).
    pub fn submit_remote(
        &self,
        folder: &str,
        device: DeviceId,
        index_id: u64,
        files: Vec<FileInfo>,
    ) -> Result<Pending<()>, DbError> {
        let folder = folder.to_string();
        self.submit(move |conn| store::update_remote(conn, &folder, device, index_id, files))
    }

    /// Forgets tombstones older than `before_secs` (see `store::forget_tombstones`).
    pub fn forget_tombstones(&self, before_secs: u64) -> Result<usize, DbError> {
        self.request(move |conn| store::forget_tombstones(conn, before_secs))
    }

    pub fn drop_folder(&self, folder: &str) -> Result<(), DbError> {
        let folder = folder.to_string();
        self.request(move |conn| store::drop_folder(conn, &folder))
    }

    pub fn drop_device_index(&self, folder: &str, device: DeviceId) -> Result<(), DbError> {
        let folder = folder.to_string();
        self.request(move |conn| store::drop_device_index(conn, &folder, device))
    }

    /// Copies the WAL into the database and truncates it (after everything sent before).
    pub fn checkpoint(&self) -> Result<(), DbError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Checkpoint(reply))?;
        answer
            .recv()
            .map_err(|_| DbError::WriterGone)?
            .map_err(|e| e.at(&self.inner.path))
    }

    /// Checkpoints, then drops this handle; the writer thread ends with the last handle.
    pub fn close(self) -> Result<(), DbError> {
        self.checkpoint()
    }
}

/// A queued write: `wait` blocks until its batch committed and returns its result.
#[must_use = "a write's result says whether it was stored"]
#[derive(Debug)]
pub struct Pending<T> {
    answer: crossbeam_channel::Receiver<Result<T, DbError>>,
    path: PathBuf,
}

impl<T> Pending<T> {
    pub fn wait(self) -> Result<T, DbError> {
        self.answer
            .recv()
            .map_err(|_| DbError::WriterGone)?
            .map_err(|e| e.at(&self.path))
    }
}

fn open_writer(path: &Path, local: DeviceId) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| DbError::Open {
        path: path.display().to_string(),
        source,
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The first statement to read the file: random bytes fail here, as NotADatabase. It
    // has to come before WAL mode, which writes the header of a new database, and after
    // which the vacuum mode could only change by rewriting the file. On a database that
    // has tables it changes nothing.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::Failed(format!(
            "the index database \"{}\" cannot use write-ahead logging (journal mode stays {mode:?}); put the home on a local file system",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", false)?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    store::configure(&conn)?;
    store::migrate(&conn)?;
    store::check(&conn)?;
    store::init_local(&conn, local)?;
    Ok(conn)
}

/// A read-only connection to the index: all reads go through one. Not `Sync`: give each
/// thread its own (they are cheap to open).
pub struct Reader {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// Opens the index at `path` read-only. The database must exist and be of this
    /// build's schema version (`Db::open` makes and migrates it).
    pub fn open(path: &Path) -> Result<Reader, DbError> {
        let open = || -> Result<Connection, DbError> {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn =
                Connection::open_with_flags(path, flags).map_err(|source| DbError::Open {
                    path: path.display().to_string(),
                    source,
                })?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
            store::configure(&conn)?;
            let version = store::user_version(&conn)?;
            if version == 0 && store::table_count(&conn)? == 0 {
                // An empty database: another process (a service starting) has created the
                // file and not yet committed its schema. Callers wait on `Locked`.
                return Err(DbError::Locked {
                    path: path.display().to_string(),
                });
            }
            if version != store::SCHEMA_VERSION {
                if version > store::SCHEMA_VERSION {
                    return Err(DbError::NewerSchema {
                        path: path.display().to_string(),
                        found: version,
                        known: store::SCHEMA_VERSION,
                    });
                }
                return Err(DbError::Damaged(format!(
                    "schema version {version}, expected {}",
                    store::SCHEMA_VERSION
                )));
            }
            Ok(conn)
        };
        Ok(Reader {
            conn: open().map_err(|e| e.at(path))?,
            path: path.to_path_buf(),
        })
    }

    /// An index with nothing in it, in memory: what a command that only reads sees on a
    /// home whose index does not exist yet. Reading never creates the file (which, made
    /// by root on someone else's home, would lock a service run as that user out of it).
    pub fn empty() -> Result<Reader, DbError> {
        let conn = Connection::open_in_memory().map_err(|source| DbError::Open {
            path: ":memory:".into(),
            source,
        })?;
        store::migrate(&conn)?;
        Ok(Reader {
            conn,
            path: PathBuf::from(":memory:"),
        })
    }

    fn at<T>(&self, r: Result<T, DbError>) -> Result<T, DbError> {
        r.map_err(|e| e.at(&self.path))
    }

    /// Starts a read transaction that lasts until the returned guard is dropped: the reads
    /// in between see one snapshot and share one lock of the WAL instead of taking and
    /// releasing it each (what many small lookups in a row, as the puller makes, spend most
    /// on). Keep it short: a snapshot held open stops checkpoints from completing.
    pub fn snapshot(&self) -> Result<Snapshot<'_>, DbError> {
        self.at(self.conn.execute_batch("BEGIN").map_err(DbError::from))?;
        Ok(Snapshot { reader: self })
    }

    /// Every local entry of a folder, by name, as the scanner compares them.
    pub fn scan_state(&self, folder: &str) -> Result<ScanStates, DbError> {
        self.at(store::scan_state(&self.conn, folder))
    }

    /// `scan_state` for a scan of `names` only (see `store::scan_state_within`).
    pub fn scan_state_within(&self, folder: &str, names: &[String]) -> Result<ScanStates, DbError> {
        self.at(store::scan_state_within(&self.conn, folder, names))
    }

    pub fn get_local(&self, folder: &str, name: &str) -> Result<Option<FileInfo>, DbError> {
        self.at(store::get_local(&self.conn, folder, name))
    }

    pub fn get(
        &self,
        folder: &str,
        device: DeviceId,
        name: &str,
    ) -> Result<Option<FileInfo>, DbError> {
        self.at(store::get(&self.conn, folder, device, name))
    }

    /// One bounded step of a walk over a peer's index (see `store::remote_step`).
    pub fn remote_step(
        &self,
        folder: &str,
        device: DeviceId,
        after: i64,
        limit: usize,
    ) -> Result<store::RemoteStep, DbError> {
        self.at(store::remote_step(&self.conn, folder, device, after, limit))
    }

    /// Calls `f` for every entry of a peer's index of a folder, in name order.
    pub fn for_each_remote<E: From<DbError>>(
        &self,
        folder: &str,
        device: DeviceId,
        f: impl FnMut(FileInfo) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut f = f;
        let walk = store::for_each_remote::<Wrapped<E>>(&self.conn, folder, device, move |info| {
            f(info).map_err(Wrapped::Caller)
        });
        match walk {
            Ok(()) => Ok(()),
            Err(Wrapped::Caller(e)) => Err(e),
            Err(Wrapped::Db(e)) => Err(E::from(e.at(&self.path))),
        }
    }

    /// Calls `f` for every local entry of a folder in name order, one at a time. An error
    /// from `f` stops the walk and is returned.
    pub fn for_each_local<E: From<DbError>>(
        &self,
        folder: &str,
        f: impl FnMut(FileInfo) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut f = f;
        let walk = store::for_each_local::<Wrapped<E>>(&self.conn, folder, move |info| {
            f(info).map_err(Wrapped::Caller)
        });
        match walk {
            Ok(()) => Ok(()),
            Err(Wrapped::Caller(e)) => Err(e),
            Err(Wrapped::Db(e)) => Err(E::from(e.at(&self.path))),
        }
    }

    /// Local entries with a sequence number above `after`, in order, at most `limit`.
    pub fn local_changes_since(
        &self,
        folder: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<FileInfo>, DbError> {
        self.at(store::local_changes_since(&self.conn, folder, after, limit))
    }

    /// Local entries whose exact version no peer holds (see
    /// `store::local_change_candidates`).
    pub fn local_change_candidates(&self, folder: &str) -> Result<Vec<FileInfo>, DbError> {
        self.at(store::local_change_candidates(&self.conn, folder))
    }

    /// Local files (any folder) holding a block with exactly this hash, at most `limit`.
    pub fn local_inode_ctime(
        &self,
        folder: &str,
        name: &str,
    ) -> Result<Option<(u64, i64)>, DbError> {
        self.at(store::local_inode_ctime(&self.conn, folder, name))
    }

    pub fn find_blocks(
        &self,
        hash: &BlockHash,
        limit: usize,
    ) -> Result<Vec<BlockLocation>, DbError> {
        self.at(store::find_blocks(&self.conn, hash, limit))
    }

    /// A block list of two or more blocks by its `blocks_hash`, if any file holds it.
    pub fn blocklist_by_hash(&self, hash: &BlockHash) -> Result<Option<Vec<BlockInfo>>, DbError> {
        self.at(store::blocklist_by_hash(&self.conn, hash))
    }

    /// `(files, bytes)` of a folder's live local regular files.
    pub fn local_counts(&self, folder: &str) -> Result<(u64, u64), DbError> {
        self.at(store::local_counts(&self.conn, folder))
    }

    /// `(index ID, max sequence)` of a device's index of a folder (local device included).
    pub fn index_info(
        &self,
        folder: &str,
        device: DeviceId,
    ) -> Result<Option<(u64, u64)>, DbError> {
        self.at(store::index_info(&self.conn, folder, device))
    }

    pub fn local_index_id(&self, folder: &str) -> Result<Option<u64>, DbError> {
        self.at(store::local_index_id(&self.conn, folder))
    }

    pub fn folders(&self) -> Result<Vec<String>, DbError> {
        self.at(store::folders(&self.conn))
    }
}

/// A read transaction of a [`Reader`]; ends when dropped.
pub struct Snapshot<'a> {
    reader: &'a Reader,
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        // Ending a read-only transaction cannot lose anything; a failure leaves SQLite to
        // end it with the connection.
        if let Err(e) = self.reader.conn.execute_batch("COMMIT") {
            tracing::debug!(error = %e, "ending a read snapshot failed");
        }
    }
}

/// Keeps a caller's error apart from the index's own inside `for_each_local`.
enum Wrapped<E> {
    Caller(E),
    Db(DbError),
}

impl<E> From<DbError> for Wrapped<E> {
    fn from(e: DbError) -> Self {
        Wrapped::Db(e)
    }
}

#[cfg(test)]
mod tests;
