//! Answering a peer's requests: blocks and block lists, only from folders shared with it.
//!
//! Block requests of a connection are served by a few threads of its own
//! ([`BlockServer`], [`SERVE_THREADS`]), fed by a channel: a request costs a channel send,
//! not a runtime task plus a blocking-pool hand-off (thread wake-ups were about a third of
//! the sender's CPU time in case L, bench/notes.md §18). Each thread keeps the folder's
//! root and the last file it read open while requests keep coming ([`ServeCache`]), so
//! the thousands of requests for one big file open it once. A cached handle only ever
//! answers with the requested block; anything else is tried again on freshly opened
//! names, so a file replaced on disk is never served stale. The cache is dropped after
//! [`CACHE_IDLE`] without requests, so no handle keeps a deleted file's space for long.
//! A block read is hashed before it is sent, except in a big file unchanged since it was
//! indexed ([`TRUST_MIN`]): a file that changed since it was indexed answers `Changed`
//! and triggers a rescan.

use super::fsops::FolderFs;
use crate::config::Config;
use crate::db::Reader;
use crate::identity::DeviceId;
use crate::net::ConnHandle;
use crate::protocol::FileType;
use crate::protocol::{
    BlockHash, BlockList, BlockListRequest, Message, Request, Response, ResponseCode,
    block_list_parts, validate_name,
};
use crate::service::Shared;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Threads serving one connection's block requests. More than the cores, so that reads
/// from a slow disk (or a network file system) overlap.
pub const SERVE_THREADS: usize = 4;
/// How long a serving thread keeps its open folder and file after the last request.
pub const CACHE_IDLE: Duration = Duration::from_millis(50);

/// The block-serving threads of one connection. Dropping it (the connection's reader
/// ended) lets them finish what is queued (answers to a closed connection are dropped)
/// and exit.
pub struct BlockServer {
    tx: Option<crossbeam_channel::Sender<Request>>,
    shared: Arc<Shared>,
    peer: DeviceId,
    conn: ConnHandle,
}

impl BlockServer {
    /// Starts the threads for a connection with `peer`.
    pub fn start(shared: &Arc<Shared>, peer: DeviceId, conn: &ConnHandle) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<Request>();
        let mut started = 0;
        for _ in 0..SERVE_THREADS {
            let (s, rx, out, sync) = (
                shared.clone(),
                rx.clone(),
                conn.tx.clone(),
                conn.sync.clone(),
            );
            let r = std::thread::Builder::new()
                .name("shoal-serve".into())
                .spawn(move || serve_loop(&s, peer, &rx, &out, &sync));
            match r {
                Ok(_) => started += 1,
                Err(e) => warn!(error = %e, "cannot start a block-serving thread"),
            }
        }
        Self {
            // Without a thread, requests go through the runtime's blocking pool instead.
            tx: (started > 0).then_some(tx),
            shared: shared.clone(),
            peer,
            conn: conn.clone(),
        }
    }

    /// Queues one request; its answer is sent on the connection once read.
    pub fn submit(&self, req: Request) {
        let req = match &self.tx {
            Some(tx) => match tx.send(req) {
                Ok(()) => return,
                Err(e) => e.into_inner(),
            },
            None => req,
        };
        answer_block(&self.shared, self.peer, &self.conn, req);
    }
}

/// One serving thread: takes requests until the connection's [`BlockServer`] is gone.
fn serve_loop(
    shared: &Arc<Shared>,
    peer: DeviceId,
    rx: &crossbeam_channel::Receiver<Request>,
    out: &mpsc::Sender<Message>,
    sync: &super::ConnSync,
) {
    let mut cache = ServeCache::default();
    loop {
        let req = match rx.recv_timeout(CACHE_IDLE) {
            Ok(r) => r,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                cache = ServeCache::default();
                match rx.recv() {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        };
        let id = req.id;
        let (code, data) = if out.is_closed() {
            (ResponseCode::Generic, Vec::new())
        } else {
            read_block(shared, peer, &req, &mut cache)
        };
        // Not a runtime thread: a blocking send is the back-pressure of a full outbox.
        let _ = out.blocking_send(Message::Response(Response { id, code, data }));
        sync.serving.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a serving thread keeps between requests: the config (while unchanged), the last
/// folder's open root and the last file read.
#[derive(Default)]
struct ServeCache {
    config: Option<(u64, Arc<Config>)>,
    root: Option<(PathBuf, FolderFs)>,
    file: Option<OpenFile>,
    reader: Option<Reader>,
}

/// A file kept open for serving.
struct OpenFile {
    folder: String,
    name: String,
    file: File,
    /// Set while the file on disk is exactly the version the index holds.
    indexed: Option<Indexed>,
}

/// The index's version of an open file whose inode, size, modification time and inode
/// change time are still those the scanner recorded: its blocks are known without
/// hashing them again (see [`TRUST_MIN`]).
struct Indexed {
    stat: DiskStat,
    /// offset -> (size, hash)
    blocks: HashMap<u64, (u32, BlockHash)>,
}

/// What tells one version of a file from another, as the scanner compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DiskStat {
    inode: u64,
    size: u64,
    modified_ns: i64,
    ctime_ns: i64,
}

impl DiskStat {
    /// As the scanner records it ([`crate::scan::file_state`]).
    fn of(file: &File) -> Option<Self> {
        let st = crate::scan::file_state(&file.metadata().ok()?);
        Some(Self {
            inode: st.inode,
            size: st.size,
            modified_ns: st.modified_ns,
            ctime_ns: st.ctime_ns,
        })
    }
}

/// Files at least this big are served without hashing each block when the file is
/// unchanged since it was indexed: the block's offset, size and hash are the indexed
/// version's, and an `fstat` after the read shows the same inode, size, modification
/// time and inode change time as the index recorded. That is the scanner's own test for
/// "unchanged" (a file modified within its racy window is recorded with no ctime, so it
/// never passes), and the kernel stamps a new ctime on any write after that `fstat`'s
/// predecessor. What a peer receives is checked against the hash there anyway
/// (invariant 2); this only spares the sender a second BLAKE3 pass over data it has just
/// indexed (about 0.4 CPU-s per GiB here). Smaller files are hashed: for them the index
/// lookup costs more than the hash.
pub const TRUST_MIN: u64 = 1 << 20;

impl OpenFile {
    /// Opens the bookkeeping for `file` just opened as `folder`/`name`.
    fn new(folder: &str, name: &str, file: File, reader: Option<&Reader>) -> Self {
        let indexed = reader.and_then(|r| indexed_version(r, folder, name, &file));
        Self {
            folder: folder.to_string(),
            name: name.to_string(),
            file,
            indexed,
        }
    }

    /// Reads the requested block: true when it is the requested one.
    fn read(&mut self, req: &Request, data: &mut [u8]) -> std::io::Result<bool> {
        self.file.read_exact_at(data, req.offset)?;
        if let Some(ix) = &self.indexed
            && ix.blocks.get(&req.offset) == Some(&(req.size, req.hash))
        {
            if DiskStat::of(&self.file) == Some(ix.stat) {
                return Ok(true);
            }
            // Changed since indexed: every block is hashed from now on.
            self.indexed = None;
        }
        Ok(BlockHash::of(data) == req.hash)
    }
}

/// The index's version of `file`, when the file is big enough and exactly that version.
fn indexed_version(reader: &Reader, folder: &str, name: &str, file: &File) -> Option<Indexed> {
    let stat = DiskStat::of(file)?;
    if stat.size < TRUST_MIN {
        return None;
    }
    let info = reader.get_local(folder, name).ok()??;
    let (inode, ctime_ns) = reader.local_inode_ctime(folder, name).ok()??;
    let recorded = DiskStat {
        inode,
        size: info.size,
        modified_ns: info.modified_ns,
        ctime_ns,
    };
    if info.deleted || info.file_type != FileType::File || recorded != stat || ctime_ns == 0 {
        return None;
    }
    let mut blocks = HashMap::with_capacity(info.blocks.len());
    let mut offset = 0u64;
    for b in &info.blocks {
        blocks.insert(offset, (b.size, b.hash));
        offset += u64::from(b.size);
    }
    (offset == info.size).then_some(Indexed { stat, blocks })
}

impl ServeCache {
    fn config(&mut self, shared: &Shared) -> Arc<Config> {
        let generation = shared.config_generation();
        match &self.config {
            Some((g, c)) if *g == generation => c.clone(),
            _ => {
                let c = Arc::new(shared.config());
                self.config = Some((generation, c.clone()));
                c
            }
        }
    }
}

/// What reading a requested block under its own name gave.
#[derive(Debug, PartialEq, Eq)]
enum Named {
    /// Read, and it hashes to the requested block.
    Good,
    /// Read, but the data differs: the file changed since it was indexed.
    Differs,
    /// The name could not be opened or read that far.
    Unreadable,
    /// The folder's root could not be opened.
    NoRoot,
}

/// Reads `req`'s block from its file under `root`: through the cached handle first, then
/// (if that did not give the block) from names opened afresh, which are then cached.
fn read_named(cache: &mut ServeCache, root: &Path, req: &Request, data: &mut [u8]) -> Named {
    if let Some((p, fs)) = &cache.root
        && p == root
    {
        match &mut cache.file {
            Some(open) if open.folder == req.folder && open.name == req.name => {
                if open.read(req, data).unwrap_or(false) {
                    return Named::Good;
                }
            }
            _ => {
                if let Ok(file) = fs.open_read(&req.name) {
                    let mut open =
                        OpenFile::new(&req.folder, &req.name, file, cache.reader.as_ref());
                    if open.read(req, data).unwrap_or(false) {
                        cache.file = Some(open);
                        return Named::Good;
                    }
                }
            }
        }
    }
    // The cached handles may be stale (the file or folder replaced): open afresh.
    cache.file = None;
    cache.root = None;
    let fs = match FolderFs::open(root) {
        Ok(fs) => fs,
        Err(_) => return Named::NoRoot,
    };
    let named = match fs.open_read(&req.name) {
        Ok(file) => {
            let mut open = OpenFile::new(&req.folder, &req.name, file, cache.reader.as_ref());
            match open.read(req, data) {
                Ok(true) => {
                    cache.file = Some(open);
                    Named::Good
                }
                Ok(false) => Named::Differs,
                Err(_) => Named::Unreadable,
            }
        }
        Err(_) => Named::Unreadable,
    };
    cache.root = Some((root.to_path_buf(), fs));
    named
}

/// Answers one block request on a blocking thread of the runtime: the fallback when a
/// connection's serving threads could not be started.
pub fn answer_block(shared: &Arc<Shared>, peer: DeviceId, conn: &ConnHandle, req: Request) {
    let s = shared.clone();
    let tx = conn.tx.clone();
    let sync = conn.sync.clone();
    shared.tasks.spawn(async move {
        let id = req.id;
        let r = tokio::task::spawn_blocking(move || {
            read_block(&s, peer, &req, &mut ServeCache::default())
        })
        .await;
        let (code, data) = match r {
            Ok(x) => x,
            Err(_) => (ResponseCode::Generic, Vec::new()),
        };
        let _ = tx
            .send(Message::Response(Response { id, code, data }))
            .await;
        sync.serving.fetch_sub(1, Ordering::Relaxed);
    });
}

fn read_block(
    shared: &Arc<Shared>,
    peer: DeviceId,
    req: &Request,
    cache: &mut ServeCache,
) -> (ResponseCode, Vec<u8>) {
    let config = cache.config(shared);
    // A folder not shared with the requester and a missing file look the same to it.
    let Some(folder) = config
        .folder(&req.folder)
        .filter(|f| f.devices.contains(&peer) && !f.paused)
    else {
        return (ResponseCode::NoSuchFile, Vec::new());
    };
    if validate_name(&req.name).is_err()
        || req.size == 0
        || req.size > crate::protocol::MAX_BLOCK_SIZE
    {
        return (ResponseCode::Invalid, Vec::new());
    }
    if cache.reader.is_none() {
        cache.reader = shared.db.reader().ok();
    }
    let mut data = vec![0u8; req.size as usize];
    let named = read_named(cache, &folder.path, req, &mut data);
    if named == Named::Good {
        return (ResponseCode::Ok, data);
    }
    if named == Named::NoRoot {
        return (ResponseCode::Generic, Vec::new());
    }
    // Any other local file with the same block serves as well (shared folders only).
    if let Some(reader) = &cache.reader
        && let Ok(locs) = reader.find_blocks(&req.hash, 4)
    {
        for loc in locs {
            let shared_ok = config
                .folder(&loc.folder)
                .map(|f| f.devices.contains(&peer))
                .unwrap_or(false);
            if !shared_ok || loc.size != req.size {
                continue;
            }
            let Some(f) = config.folder(&loc.folder) else {
                continue;
            };
            let Ok(ffs) = FolderFs::open(&f.path) else {
                continue;
            };
            if ffs
                .open_read(&loc.name)
                .and_then(|h| h.read_exact_at(&mut data, loc.offset))
                .is_ok()
                && BlockHash::of(&data) == req.hash
            {
                return (ResponseCode::Ok, data);
            }
        }
    }
    if named == Named::Differs {
        info!(folder = %req.folder, name = %req.name, "requested block changed on disk since indexed");
        // Rescan, so the peer gets the new version.
        shared.request_rescan(&req.folder);
        return (ResponseCode::Changed, Vec::new());
    }
    debug!(folder = %req.folder, name = %req.name, "requested block not found");
    (ResponseCode::NoSuchFile, Vec::new())
}

/// Answers a block-list request from the index.
pub fn answer_list(shared: &Arc<Shared>, peer: DeviceId, conn: &ConnHandle, req: BlockListRequest) {
    let s = shared.clone();
    let tx = conn.tx.clone();
    let sync = conn.sync.clone();
    shared.tasks.spawn(async move {
        let id = req.id;
        let r = tokio::task::spawn_blocking(move || {
            let config = s.config();
            let folder = config
                .folder(&req.folder)
                .filter(|f| f.devices.contains(&peer))?;
            let reader = s.db.reader().ok()?;
            // Only a list that an entry of this shared folder names: the hash alone must not
            // open lists of folders the requester does not share.
            let named = std::iter::once(reader.get_local(&folder.id, &req.name))
                .chain(
                    folder
                        .devices
                        .iter()
                        .map(|d| reader.get(&folder.id, *d, &req.name)),
                )
                .filter_map(|r| r.ok().flatten())
                .any(|f| f.blocks_hash() == req.list);
            if !named {
                return None;
            }
            reader.blocklist_by_hash(&req.list).ok().flatten()
        })
        .await
        .ok()
        .flatten();
        match r {
            Some(list) => {
                for part in block_list_parts(id, &list) {
                    if tx.send(part).await.is_err() {
                        break;
                    }
                }
            }
            None => {
                let _ = tx
                    .send(Message::BlockList(BlockList {
                        id,
                        code: ResponseCode::NoSuchFile,
                        total: 0,
                        blocks: Vec::new(),
                    }))
                    .await;
            }
        }
        sync.serving_lists.fetch_sub(1, Ordering::Relaxed);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, offset: u64, data: &[u8]) -> Request {
        Request {
            id: 1,
            folder: "f".into(),
            name: name.into(),
            offset,
            size: data.len() as u32,
            hash: BlockHash::of(data),
        }
    }

    fn read(cache: &mut ServeCache, root: &Path, req: &Request) -> (Named, Vec<u8>) {
        let mut data = vec![0u8; req.size as usize];
        let named = read_named(cache, root, req, &mut data);
        (named, data)
    }

    #[test]
    fn a_cached_handle_never_serves_a_replaced_or_changed_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        std::fs::create_dir(root.join("d")).expect("mkdir");
        let v1 = vec![1u8; 5000];
        let v2 = vec![2u8; 5000];
        std::fs::write(root.join("d/x"), &v1).expect("write");
        let mut cache = ServeCache::default();
        let r1 = request("d/x", 1000, &v1[1000..2000]);
        assert_eq!(
            read(&mut cache, root, &r1),
            (Named::Good, v1[1000..2000].to_vec())
        );
        assert!(cache.file.is_some(), "the file is kept open");
        // Replaced by rename: the cached handle still reads the old inode, which does not
        // hold the new version's block; the name is opened again.
        std::fs::write(root.join("d/x.new"), &v2).expect("write");
        std::fs::rename(root.join("d/x.new"), root.join("d/x")).expect("rename");
        let r2 = request("d/x", 1000, &v2[1000..2000]);
        assert_eq!(
            read(&mut cache, root, &r2),
            (Named::Good, v2[1000..2000].to_vec())
        );
        // Changed in place: the data read does not hash to the indexed block.
        std::fs::write(root.join("d/x"), vec![3u8; 5000]).expect("write");
        assert_eq!(read(&mut cache, root, &r2).0, Named::Differs);
        // Gone, or too short.
        let r3 = request("d/x", 4500, &v2[..1000]);
        assert_eq!(read(&mut cache, root, &r3).0, Named::Unreadable);
        std::fs::remove_file(root.join("d/x")).expect("rm");
        assert_eq!(read(&mut cache, root, &r2).0, Named::Unreadable);
        // Another file in the same folder goes through the cached root.
        std::fs::write(root.join("d/y"), &v1).expect("write");
        let r4 = request("d/y", 0, &v1[..10]);
        assert_eq!(
            read(&mut cache, root, &r4),
            (Named::Good, v1[..10].to_vec())
        );
        assert!(cache.file.as_ref().is_some_and(|o| o.name == "d/y"));
    }

    #[test]
    fn a_replaced_folder_root_is_opened_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("f");
        std::fs::create_dir(&root).expect("mkdir");
        std::fs::write(root.join("x"), b"old contents").expect("write");
        let mut cache = ServeCache::default();
        let old = request("x", 0, b"old contents");
        assert_eq!(read(&mut cache, &root, &old).0, Named::Good);
        // The folder moved away and a new one took its path.
        std::fs::rename(&root, dir.path().join("moved")).expect("mv");
        std::fs::create_dir(&root).expect("mkdir");
        std::fs::write(root.join("x"), b"new contents").expect("write");
        std::fs::write(root.join("y"), b"other").expect("write");
        let new = request("x", 0, b"new contents");
        assert_eq!(
            read(&mut cache, &root, &new),
            (Named::Good, b"new contents".to_vec())
        );
        let y = request("y", 0, b"other");
        assert_eq!(read(&mut cache, &root, &y).0, Named::Good);
        // Removed: a warm cache may still answer from the open handle, with exactly the
        // requested bytes; once idle, the folder is looked up again.
        std::fs::remove_dir_all(&root).expect("rm");
        let (named, data) = read(&mut cache, &root, &y);
        assert!(named == Named::NoRoot || (named == Named::Good && data == b"other"));
        assert_eq!(read(&mut ServeCache::default(), &root, &y).0, Named::NoRoot);
    }

    /// A file opened with its indexed version, as `indexed_version` makes it when the
    /// file is unchanged since it was indexed.
    fn trusted(path: &Path, blocks: &[(u64, &[u8])]) -> OpenFile {
        let file = File::open(path).expect("open");
        let stat = DiskStat::of(&file).expect("stat");
        OpenFile {
            folder: "f".into(),
            name: "x".into(),
            file,
            indexed: Some(Indexed {
                stat,
                blocks: blocks
                    .iter()
                    .map(|(o, d)| (*o, (d.len() as u32, BlockHash::of(d))))
                    .collect(),
            }),
        }
    }

    #[test]
    fn an_indexed_block_is_trusted_only_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("x");
        let v1: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &v1).expect("write");
        let mut open = trusted(&path, &[(0, &v1[..4096]), (4096, &v1[4096..])]);
        let r = request("x", 4096, &v1[4096..]);
        let mut data = vec![0u8; 4096];
        assert!(open.read(&r, &mut data).expect("read"));
        assert_eq!(data, v1[4096..]);
        // Rewritten in place, same size, modification time put back: only the inode
        // change time tells. The block must be hashed, and it no longer matches.
        let before = std::fs::metadata(&path).expect("stat");
        let mut v2 = v1.clone();
        v2[5000] ^= 0xff;
        std::fs::write(&path, &v2).expect("write");
        let mtime = std::fs::FileTimes::new().set_modified(before.modified().expect("mtime"));
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_times(mtime))
            .expect("set mtime");
        assert_eq!(
            std::fs::metadata(&path)
                .expect("stat")
                .modified()
                .expect("mtime"),
            before.modified().expect("mtime")
        );
        assert!(
            !open.read(&r, &mut data).expect("read"),
            "served a changed block as indexed"
        );
        assert!(open.indexed.is_none(), "trust is dropped for good");
        // The unchanged first block still reads right, now hashed.
        let r0 = request("x", 0, &v1[..4096]);
        assert!(open.read(&r0, &mut data).expect("read"));
        // A request for a block the index does not have at that offset is hashed too.
        let mut open = trusted(&path, &[(0, &v1[..4096])]);
        let wrong = request("x", 0, &v2[4096..]);
        assert!(!open.read(&wrong, &mut data).expect("read"));
    }
}
