//! The sync engine: index exchange, deciding what to pull, pulling blocks (local data
//! first, then peers), and writing files safely.
//!
//! Who does what:
//! - [`index`]: per connection and shared folder, a sender streams our local index from
//!   where the peer says it stands, then every change as it happens; a receiver checks
//!   each entry from the peer, stores it, and queues what we need for the folder's puller.
//! - [`pull`]: runs inside the folder's task (so it never overlaps a scan of the same
//!   folder), on a blocking thread: builds each needed file in a `.shoal-tmp-*` file beside
//!   it from verified blocks (the file's previous version through [`reuse`]), makes the
//!   files durable with one `syncfs` per chunk, renames them into place.
//! - [`serve`]: answers a peer's block requests from folders shared with that peer only,
//!   verifying the data against the index before it leaves.
//! - [`fsops`]: every write inside a folder goes through directory handles that never
//!   follow symlinks.
//! - [`names`]: case-insensitive and normalising file systems: the probe, name clashes,
//!   case-only renames.

pub mod conflict;
pub mod fsops;
pub mod index;
pub mod names;
pub mod pull;
pub mod receive_only;
pub mod reuse;
pub mod serve;
pub mod versions;
pub mod watch;

use crate::protocol::{BlockList, Response};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Bytes of block data requested and not yet received, per file being pulled.
pub const PULL_WINDOW_BYTES: u64 = 16 << 20;

/// A connection's sync bookkeeping: requests in flight, index senders running.
#[derive(Default)]
pub struct ConnSync {
    next_id: AtomicU64,
    blocks: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    lists: Mutex<HashMap<u64, mpsc::UnboundedSender<BlockList>>>,
    /// Folder ID → the running index sender's token.
    pub senders: Mutex<HashMap<String, CancellationToken>>,
    /// The peer's requests we are still answering (bounded by the protocol).
    pub serving: std::sync::atomic::AtomicUsize,
    /// The peer's block-list requests we are still answering.
    pub serving_lists: std::sync::atomic::AtomicUsize,
    /// The peer's last cluster config: where it stands in our indexes.
    pub peer_cc: Mutex<Option<crate::protocol::ClusterConfig>>,
}

/// A name's parts for names Shoal derives from it (conflict copies, kept versions): the
/// directory, the stem and the extension (with its dot; none for `.bashrc`).
pub(crate) fn split_name(name: &str) -> (Option<&str>, &str, &str) {
    let (dir, base) = match name.rsplit_once('/') {
        Some((d, b)) => (Some(d), b),
        None => (None, name),
    };
    let (stem, ext) = match base.rfind('.') {
        Some(i) if i > 0 => (&base[..i], &base[i..]),
        _ => (base, ""),
    };
    (dir, stem, ext)
}

/// A byte count for people: `512 B`, `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `YYYYMMDD-HHMMSS` of a UTC time, as derived names carry it.
pub(crate) fn stamp(now: time::OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ConnSync {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a block request; the answer arrives on the returned channel.
    pub fn expect_block(&self, id: u64) -> oneshot::Receiver<Response> {
        let (tx, rx) = oneshot::channel();
        lock(&self.blocks).insert(id, tx);
        rx
    }

    pub fn expect_list(&self, id: u64) -> mpsc::UnboundedReceiver<BlockList> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.lists).insert(id, tx);
        rx
    }

    /// Hands a response to whoever asked; false when nobody did (a protocol error).
    pub fn complete_block(&self, r: Response) -> bool {
        match lock(&self.blocks).remove(&r.id) {
            Some(tx) => {
                let _ = tx.send(r);
                true
            }
            None => false,
        }
    }

    pub fn list_part(&self, part: BlockList) -> bool {
        let mut lists = lock(&self.lists);
        let Some(tx) = lists.get(&part.id) else {
            return false;
        };
        let id = part.id;
        if tx.send(part).is_err() {
            lists.remove(&id);
        }
        true
    }

    pub fn forget_list(&self, id: u64) {
        lock(&self.lists).remove(&id);
    }

    /// Fails every request in flight (the connection ended).
    pub fn fail_all(&self) {
        lock(&self.blocks).clear();
        lock(&self.lists).clear();
        for (_, t) in lock(&self.senders).drain() {
            t.cancel();
        }
    }
}
