//! Folder tasks: each folder is scanned at start, every `rescan_interval_secs`, and on
//! request; its state (`idle`, `scanning`, `syncing`, `error`, `paused`) is what status
//! and the event stream show.

use super::api::Event;
use super::{Shared, lock};
use crate::config::FolderConfig;
use crate::indexer::{check_marker, index_folder};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

type ScanReply = oneshot::Sender<Result<(), String>>;
type RevertReply = oneshot::Sender<Result<serde_json::Value, String>>;

/// What a folder task is asked to do, in turn with its scans and pulls.
enum FolderRequest {
    Scan(ScanReply),
    /// Throw away a receive-only folder's local changes.
    Revert(RevertReply),
}

impl FolderRequest {
    fn fail(self, msg: String) {
        match self {
            FolderRequest::Scan(r) => {
                let _ = r.send(Err(msg));
            }
            FolderRequest::Revert(r) => {
                let _ = r.send(Err(msg));
            }
        }
    }
}

/// The running folder tasks, by folder ID.
#[derive(Default)]
pub struct FolderControl {
    tasks: Mutex<HashMap<String, FolderTask>>,
}

struct FolderTask {
    config: FolderConfig,
    rescan: mpsc::Sender<FolderRequest>,
    pull: mpsc::UnboundedSender<Vec<String>>,
    cancel: CancellationToken,
}

impl FolderControl {
    pub fn queue_pull(&self, folder: &str, names: Vec<String>) {
        if let Some(t) = lock(&self.tasks).get(folder) {
            let _ = t.pull.send(names);
        }
    }

    pub fn queue_rescan(&self, folder: &str) {
        if let Some(t) = lock(&self.tasks).get(folder) {
            let (tx, _) = oneshot::channel();
            let _ = t.rescan.try_send(FolderRequest::Scan(tx));
        }
    }
}

/// Starts the task that keeps one folder task per configured folder.
pub fn start(shared: &Arc<Shared>) {
    let s = shared.clone();
    shared.tasks.spawn(async move {
        let mut gen_rx = s.config_gen.subscribe();
        loop {
            reconcile(&s);
            tokio::select! {
                _ = s.cancel.cancelled() => return,
                r = gen_rx.changed() => if r.is_err() { return },
            }
        }
    });
}

fn reconcile(shared: &Arc<Shared>) {
    let config = shared.config();
    let mut tasks = lock(&shared.folder_ctl.tasks);
    tasks.retain(|id, t| {
        let keep = config.folder(id) == Some(&t.config);
        if !keep {
            t.cancel.cancel();
        }
        keep
    });
    lock(&shared.folders).retain(|id, _| config.folder(id).is_some());
    for f in &config.folders {
        if tasks.contains_key(&f.id) {
            continue;
        }
        let (tx, rx) = mpsc::channel(16);
        let (ptx, prx) = mpsc::unbounded_channel();
        let cancel = shared.cancel.child_token();
        let span = info_span!("folder", id = %f.id);
        shared
            .tasks
            .spawn(run_folder(shared.clone(), f.clone(), rx, prx, cancel.clone()).instrument(span));
        tasks.insert(
            f.id.clone(),
            FolderTask {
                config: f.clone(),
                rescan: tx,
                pull: ptx,
                cancel,
            },
        );
    }
}

fn set_state(shared: &Shared, folder: &str, state: &str, error: Option<String>) {
    let mut map = lock(&shared.folders);
    let e = map.entry(folder.to_string()).or_default();
    if e.state == state && e.error == error {
        return;
    }
    e.state = state.to_string();
    e.error = error.clone();
    drop(map);
    shared.emit(Event::FolderState {
        folder: folder.to_string(),
        state: state.to_string(),
        error,
    });
}

/// How long the watcher waits for a burst of changes to settle before scanning: short,
/// so a single saved file propagates in well under the 150 ms target.
const WATCH_SETTLE: Duration = Duration::from_millis(20);
/// Backoff of failed pulls (a full disk, a permission error, a device gone): 2, 4, 8, 16,
/// then every 30 seconds while they keep failing; back to 2 once a retry pulls everything.
/// A retry also starts at once when the folder's file system gains free space (checked
/// every [`MARKER_CHECK`] while something waits for a retry) and when the user asks for a
/// rescan (`shoal rescan`), so a pull resumes within seconds of the cause going away.
const PULL_RETRY_FIRST: Duration = Duration::from_secs(2);
const PULL_RETRY_MAX: Duration = Duration::from_secs(30);
/// Free space gained since the last failed pull that starts a retry early.
const RETRY_ON_FREED: u64 = 1 << 20;
/// Names handed to the puller at once.
const PULL_BATCH: usize = 2000;
/// A burst that keeps going is still scanned at least this often.
const WATCH_MAX_DELAY: Duration = Duration::from_millis(200);

/// How a folder's live phase ended.
enum Flow {
    Cancelled,
    /// The path or marker vanished: wait for it, then start again.
    MarkerLost,
}

/// How often a folder checks that its marker is still there (a stat).
const MARKER_CHECK: Duration = Duration::from_secs(2);

async fn run_folder(
    shared: Arc<Shared>,
    folder: FolderConfig,
    mut requests: mpsc::Receiver<FolderRequest>,
    mut pulls: mpsc::UnboundedReceiver<Vec<String>>,
    cancel: CancellationToken,
) {
    if folder.paused {
        set_state(&shared, &folder.id, "paused", None);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = requests.recv() => match r {
                    // A paused folder is not scanned: nothing to wait for.
                    Some(FolderRequest::Scan(reply)) => { let _ = reply.send(Ok(())); }
                    Some(req) => req.fail(format!("folder \"{}\" is paused; resume it first", folder.id)),
                    None => return,
                },
            }
        }
    }
    loop {
        // Invariant 6: without its marker a folder neither scans nor pulls; it waits.
        while let Err(e) = check_marker(&folder) {
            let msg = e.to_string();
            set_state(&shared, &folder.id, "error", Some(msg.clone()));
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = requests.recv() => match r {
                    Some(req) => req.fail(msg),
                    None => return,
                },
                _ = tokio::time::sleep(MARKER_CHECK) => {}
            }
        }
        match run_folder_live(&shared, &folder, &mut requests, &mut pulls, &cancel).await {
            Flow::Cancelled => return,
            Flow::MarkerLost => {
                warn!("folder marker or path vanished; stopped until it is back");
            }
        }
    }
}

async fn run_folder_live(
    shared: &Arc<Shared>,
    folder: &FolderConfig,
    requests: &mut mpsc::Receiver<FolderRequest>,
    pulls: &mut mpsc::UnboundedReceiver<Vec<String>>,
    cancel: &CancellationToken,
) -> Flow {
    let shared = shared.clone();
    let folder = folder.clone();
    let cancel = cancel.clone();
    // Failures of an earlier run are tried again below (or are no longer needed).
    lock(&shared.folders)
        .entry(folder.id.clone())
        .or_default()
        .pull_errors
        .clear();
    lock(&shared.folders)
        .entry(folder.id.clone())
        .or_default()
        .pull_error_bytes
        .clear();
    let db = shared.db.clone();
    let fid = folder.id.clone();
    let _ = tokio::task::spawn_blocking(move || db.add_folder(&fid)).await;
    // How the file system compares names: probed once per start (after a lost marker the
    // folder may be on another disk).
    let (fid, root) = (folder.id.clone(), folder.path.clone());
    let caps = tokio::task::spawn_blocking(move || crate::sync::names::probe_logged(&fid, &root))
        .await
        .unwrap_or(crate::sync::names::FsCaps::ASSUMED);
    lock(&shared.folders)
        .entry(folder.id.clone())
        .or_default()
        .fs_caps = Some(caps);
    let interval = Duration::from_secs(folder.rescan_interval_secs.max(10));
    // The watcher starts before the first scan: a file written while that scan walks
    // past its directory is then seen by the watcher (its event waits in the channel)
    // instead of waiting for the next full rescan.
    let mut watch_limit = None;
    let (_watch, mut events) = match crate::sync::watch::watch(&folder.path) {
        Ok((w, rx)) => (Some(w), rx),
        Err(e) => {
            warn!(error = %e, "not watching");
            shared.emit(Event::Log {
                level: "warn".into(),
                message: format!("folder {}: {e}", folder.id),
            });
            if matches!(e, crate::sync::watch::WatchError::Limit) {
                watch_limit = Some(e.to_string());
            }
            (None, mpsc::unbounded_channel().1)
        }
    };
    // A folder is scanned once before anything is pulled into it.
    let _ = scan_once(&shared, &folder, None, &cancel).await;
    if let Some(e) = watch_limit {
        // After the scan, which sets the state of its own.
        set_state(&shared, &folder.id, "error", Some(e));
    }
    let mut changed: std::collections::BTreeSet<String> = Default::default();
    let mut first_change: Option<tokio::time::Instant> = None;
    // Entries stored from peers in an earlier run and not yet applied: a sweep of their
    // indexes finds them (the first names now, the rest as they are pulled).
    let mut pending_pull = Pending {
        names: Default::default(),
        sweep: Some(Sweep::START),
    };
    while pending_pull.names.len() < PENDING_MAX && pending_pull.sweep.is_some() {
        if !sweep_step(&shared, &folder, &mut pending_pull, &Default::default()).await {
            break;
        }
    }
    if pending_pull.complete() {
        clean_temp_files(&folder, &pending_pull.names).await;
    }
    let mut next_full = tokio::time::Instant::now() + interval;
    // Pulls that failed (disk full, a device gone): tried again later, backing off.
    let mut retry: std::collections::BTreeSet<String> = Default::default();
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut retry_delay = PULL_RETRY_FIRST;
    // Free space on the folder's file system when a pull last failed.
    let mut free_at_failure: Option<u64> = None;
    loop {
        if !pending_pull.is_empty() && changed.is_empty() {
            // Names that arrived meanwhile join the set now rather than wait in the
            // channel (a peer's index of a million files would otherwise sit there twice).
            while let Ok(more) = pulls.try_recv() {
                pending_pull.extend(more);
            }
            if pending_pull.names.is_empty() {
                // Beyond what the set holds: the next needed names from the database.
                if !sweep_step(&shared, &folder, &mut pending_pull, &retry).await {
                    tokio::select! {
                        _ = cancel.cancelled() => return Flow::Cancelled,
                        _ = tokio::time::sleep(MARKER_CHECK) => {}
                    }
                }
                continue;
            }
            // Bounded batches keep memory flat however much a peer has for us.
            let names: Vec<String> = pending_pull
                .names
                .iter()
                .take(PULL_BATCH)
                .cloned()
                .collect();
            for n in &names {
                pending_pull.names.remove(n);
            }
            let failed = pull(&shared, &folder, names, &cancel).await;
            if check_marker(&folder).is_err() {
                return Flow::MarkerLost;
            }
            if !failed.is_empty() {
                retry.extend(failed);
                retry_at = Some(tokio::time::Instant::now() + retry_delay);
                retry_delay = (retry_delay * 2).min(PULL_RETRY_MAX);
                free_at_failure = free_space(&folder.path);
            } else if retry.is_empty() {
                retry_delay = PULL_RETRY_FIRST;
            }
            continue;
        }
        let settle = match first_change {
            Some(t0) => {
                let deadline =
                    (tokio::time::Instant::now() + WATCH_SETTLE).min(t0 + WATCH_MAX_DELAY);
                Some(deadline)
            }
            None => None,
        };
        tokio::select! {
            _ = cancel.cancelled() => return Flow::Cancelled,
            _ = tokio::time::sleep(MARKER_CHECK) => {
                if check_marker(&folder).is_err() {
                    return Flow::MarkerLost;
                }
                // Space came back (a file deleted, a disk grown): retry now.
                if retry_at.is_some()
                    && let (Some(then), Some(now)) = (free_at_failure, free_space(&folder.path))
                    && now > then.saturating_add(RETRY_ON_FREED)
                {
                    info!(freed = now - then, "free space came back; retrying failed pulls");
                    retry_at = Some(tokio::time::Instant::now());
                }
            }
            r = requests.recv() => {
                let Some(req) = r else { return Flow::Cancelled };
                let result = scan_once(&shared, &folder, None, &cancel).await;
                next_full = tokio::time::Instant::now() + interval;
                match req {
                    FolderRequest::Scan(reply) => { let _ = reply.send(result); }
                    FolderRequest::Revert(reply) => {
                        // Between pulls, on the index the scan just brought up to date.
                        let answer = match result {
                            Err(e) => Err(e),
                            Ok(()) => revert_now(&shared, &folder).await.map(|(json, names)| {
                                pending_pull.extend(names);
                                json
                            }),
                        };
                        let _ = reply.send(answer);
                    }
                }
                // The user may have fixed what made pulls fail: try them again now.
                if !retry.is_empty() {
                    retry_at = None;
                    retry_delay = PULL_RETRY_FIRST;
                    pending_pull.append(&mut retry);
                }
            }
            Some(names) = pulls.recv() => {
                pending_pull.extend(names);
                while let Ok(more) = pulls.try_recv() {
                    pending_pull.extend(more);
                }
            }
            Some(name) = events.recv() => {
                changed.insert(name);
                while let Ok(more) = events.try_recv() {
                    changed.insert(more);
                }
                first_change.get_or_insert_with(tokio::time::Instant::now);
            }
            _ = async { if let Some(d) = settle { tokio::time::sleep_until(d).await } else { std::future::pending::<()>().await } } => {
                first_change = None;
                let names: Vec<String> = std::mem::take(&mut changed).into_iter().collect();
                let only = if names.iter().any(String::is_empty) { None } else { Some(names) };
                if scan_once(&shared, &folder, only, &cancel).await.is_err() && check_marker(&folder).is_err() {
                    return Flow::MarkerLost;
                }
            }
            _ = async { if let Some(t) = retry_at { tokio::time::sleep_until(t).await } else { std::future::pending::<()>().await } } => {
                retry_at = None;
                pending_pull.append(&mut retry);
            }
            _ = tokio::time::sleep_until(next_full) => {
                let _ = scan_once(&shared, &folder, None, &cancel).await;
                if pending_pull.complete() {
                    clean_temp_files(&folder, &pending_pull.names).await;
                }
                let (path, v) = (folder.path.clone(), folder.versioning);
                let _ = tokio::task::spawn_blocking(move || crate::sync::versions::clean(&path, v)).await;
                next_full = tokio::time::Instant::now() + interval;
            }
        }
    }
}

/// Bytes an unprivileged writer may still use on the file system holding `path`.
fn free_space(path: &std::path::Path) -> Option<u64> {
    rustix::fs::statvfs(path)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

/// Removes temp files left by interrupted pulls whose file is no longer needed (those of
/// needed files stay: their blocks resume the pull).
async fn clean_temp_files(folder: &FolderConfig, needed: &std::collections::BTreeSet<String>) {
    let path = folder.path.clone();
    let keep: std::collections::HashSet<String> = needed
        .iter()
        .map(|n| crate::sync::fsops::FolderFs::temp_name(n))
        .collect();
    let _ = tokio::task::spawn_blocking(move || {
        let Ok(fs) = crate::sync::fsops::FolderFs::open(&path) else {
            return;
        };
        for t in crate::sync::fsops::find_temp_files(&path) {
            if !keep.contains(&t) && fs.remove_file(&t).is_ok() {
                info!(temp = %t, "removed a stale temp file");
            }
        }
    })
    .await;
}

/// Needed names held in memory at most. Beyond, names are dropped and found again in the
/// database by a [`Sweep`]: two devices seeded with the same million files need a million
/// version merges, and a set of a million names costs about 90 MiB.
const PENDING_MAX: usize = 20_000;
/// Peer entries a sweep step reads (and compares with ours) at most.
const SWEEP_STEP: usize = 5000;

/// A walk over the peers' indexes of a folder, a bounded step at a time in the order of
/// the primary key, that finds the names needed (those a `decide` would pull or merge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sweep {
    /// Position in the folder's device list.
    device: usize,
    /// The name index (`names.idx`) to continue after.
    after: i64,
    /// Names were dropped while this sweep was under way, maybe behind it: once it is
    /// done, start over.
    again: bool,
}

impl Sweep {
    const START: Sweep = Sweep {
        device: 0,
        after: i64::MIN,
        again: false,
    };
}

/// The names a folder still has to pull: a bounded set, and a sweep of the database for
/// those that did not fit.
struct Pending {
    names: std::collections::BTreeSet<String>,
    sweep: Option<Sweep>,
}

impl Pending {
    fn extend(&mut self, names: impl IntoIterator<Item = String>) {
        let mut dropped = false;
        for n in names {
            if self.names.len() < PENDING_MAX {
                self.names.insert(n);
            } else if !self.names.contains(&n) {
                dropped = true;
            }
        }
        if dropped {
            match &mut self.sweep {
                Some(s) => s.again = true,
                None => self.sweep = Some(Sweep::START),
            }
        }
    }

    fn append(&mut self, names: &mut std::collections::BTreeSet<String>) {
        self.extend(std::mem::take(names));
    }

    fn is_empty(&self) -> bool {
        self.names.is_empty() && self.sweep.is_none()
    }

    /// Whether every needed name is in `names` (the temp files of others can go).
    fn complete(&self) -> bool {
        self.sweep.is_none()
    }
}

/// Runs a step of `pending`'s sweep: adds the needed names it finds (but those waiting in
/// `retry`) and moves the sweep on, or ends it. False when the index could not be read
/// (the sweep stays where it was).
async fn sweep_step(
    shared: &Arc<Shared>,
    folder: &FolderConfig,
    pending: &mut Pending,
    retry: &std::collections::BTreeSet<String>,
) -> bool {
    let Some(sweep) = pending.sweep else {
        return true;
    };
    // Busy finding work: not idle (a caller waiting for idle waits for the sweep too).
    let error = lock(&shared.folders)
        .get(&folder.id)
        .and_then(|rt| rt.error.clone());
    set_state(shared, &folder.id, "syncing", error.clone());
    let s = shared.clone();
    let f = folder.clone();
    let step = tokio::task::spawn_blocking(move || {
        let mut sweep = sweep;
        let Some(device) = f.devices.get(sweep.device) else {
            return Ok((Vec::new(), None));
        };
        let reader = s.db.reader()?;
        let (entries, last) = reader.remote_step(&f.id, *device, sweep.after, SWEEP_STEP)?;
        let mut names = Vec::new();
        for (remote, local) in entries.iter() {
            if crate::sync::pull::decide(local.as_ref(), remote) != crate::sync::pull::Need::Nothing
            {
                names.push(remote.name.clone());
            }
        }
        if entries.len() < SWEEP_STEP {
            sweep.device += 1;
            sweep.after = i64::MIN;
        } else {
            sweep.after = last;
        }
        let next = if sweep.device < f.devices.len() {
            Some(sweep)
        } else if sweep.again {
            Some(Sweep::START)
        } else {
            None
        };
        Ok::<_, crate::db::DbError>((names, next))
    })
    .await;
    match step {
        Ok(Ok((names, next))) => {
            pending.sweep = next;
            pending
                .names
                .extend(names.into_iter().filter(|n| !retry.contains(n)));
            if pending.is_empty() {
                set_state(shared, &folder.id, "idle", error);
            }
            true
        }
        Ok(Err(e)) => {
            warn!(folder = %folder.id, error = %e, "cannot read the index to find what to pull");
            false
        }
        Err(_) => false,
    }
}

/// Pulls `names` (on a blocking thread) and reports.
async fn pull(
    shared: &Arc<Shared>,
    folder: &FolderConfig,
    names: Vec<String>,
    cancel: &CancellationToken,
) -> Vec<String> {
    if let Err(e) = check_marker(folder) {
        set_state(shared, &folder.id, "error", Some(e.to_string()));
        return names;
    }
    set_state(shared, &folder.id, "syncing", None);
    let s = shared.clone();
    let f = folder.clone();
    // Only a folding file system has clashes to clear.
    let batch: Option<std::collections::HashSet<String>> = shared
        .fs_caps(&folder.id)
        .folds()
        .then(|| names.iter().cloned().collect());
    let tried = names.clone();
    let job = tokio::task::spawn_blocking(move || crate::sync::pull::pull_batch(&s, &f, names));
    let report = tokio::select! {
        _ = cancel.cancelled() => return Vec::new(),
        r = job => match r { Ok(r) => r, Err(_) => return Vec::new() },
    };
    for f in &report.applied {
        shared.emit(Event::FileChanged {
            folder: folder.id.clone(),
            name: f.name.clone(),
            device: f.modified_by.to_string(),
            deleted: f.deleted,
        });
    }
    if !report.applied.is_empty() {
        info!(
            files = report.applied.len(),
            from_peers = report.bytes_from_peers,
            reused = report.bytes_reused,
            "pulled"
        );
        shared.local_changed(&folder.id);
    }
    if !report.rescan.is_empty() {
        let _ = scan_once(shared, folder, Some(report.rescan.clone()), cancel).await;
    }
    // Bounded: a read-only disk fails every file of every retry.
    for (name, e) in report.failed.iter().take(FAILURES_LOGGED) {
        warn!(%name, error = %e, "pull failed; will retry");
    }
    if report.failed.len() > FAILURES_LOGGED {
        warn!(
            more = report.failed.len() - FAILURES_LOGGED,
            "more pulls failed; `shoal status --json` lists them"
        );
    }
    // The folder keeps syncing what it can; what failed is shown (until it succeeds or is
    // no longer needed: every failed name is in a later batch) and retried. Clashes stand
    // until a pull of the name goes through: other batches keep them.
    let error = {
        let mut map = lock(&shared.folders);
        let rt = map.entry(folder.id.clone()).or_default();
        for n in &tried {
            rt.pull_errors.remove(n);
            rt.pull_error_bytes.remove(n);
        }
        for (n, e) in &report.failed {
            rt.pull_errors.insert(n.clone(), e.clone());
        }
        rt.pull_error_bytes
            .extend(report.failed_bytes.iter().map(|(n, s)| (n.clone(), *s)));
        // Logged when first met, not at every retry.
        for c in &report.clashes {
            if !rt.name_clashes.contains(c) {
                let (name, local) = c;
                warn!(%name, %local, "name clash: the peer's name is this local name on this file system; neither is written (rename one of them)");
            }
        }
        if let Some(batch) = &batch {
            rt.name_clashes.retain(|(n, _)| !batch.contains(n));
        }
        rt.name_clashes.extend(report.clashes.iter().cloned());
        let caps = rt.fs_caps.unwrap_or(crate::sync::names::FsCaps::ASSUMED);
        let errors: Vec<String> = pull_error_summary(&rt.pull_errors)
            .into_iter()
            .chain(clash_error(&rt.name_clashes, caps))
            .collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    };
    set_state(shared, &folder.id, "idle", error);
    report
        .failed
        .into_iter()
        .map(|(n, _)| n)
        .chain(report.clashes.into_iter().map(|(n, _)| n))
        .collect()
}

/// The folder's `error` while files fail to pull: how many, and the first one's reason.
fn pull_error_summary(errors: &std::collections::BTreeMap<String, String>) -> Option<String> {
    errors.iter().next().map(|(name, e)| {
        format!(
            "{} file(s) could not be pulled (retrying): {name}: {e}",
            errors.len()
        )
    })
}

/// Failed pulls of one batch logged one by one.
const FAILURES_LOGGED: usize = 20;

/// At most this many failed names are listed in `status --json`.
const PULL_ERRORS_LISTED: usize = 100;

async fn scan_once(
    shared: &Arc<Shared>,
    folder: &FolderConfig,
    only: Option<Vec<String>>,
    cancel: &CancellationToken,
) -> Result<(), String> {
    if let Err(e) = check_marker(folder) {
        let msg = e.to_string();
        warn!(error = %msg, "folder stopped");
        set_state(shared, &folder.id, "error", Some(msg.clone()));
        return Err(msg);
    }
    set_state(shared, &folder.id, "scanning", None);
    let s = shared.clone();
    let f = folder.clone();
    let scan = tokio::task::spawn_blocking(move || {
        let progress = |p: &crate::scan::Progress| {
            s.emit(Event::ScanProgress {
                folder: f.id.clone(),
                files: p.files_seen,
                bytes_done: p.bytes_hashed,
                bytes_total: p.bytes_to_hash,
            });
        };
        let mut changed = Vec::new();
        let caps = s.fs_caps(&f.id);
        let result = index_folder(
            &s.db,
            &f,
            caps,
            only.as_deref(),
            &progress,
            Some(&mut changed),
        );
        if result.is_ok() {
            let me = s.local.short().to_string();
            for c in changed {
                s.emit(Event::FileChanged {
                    folder: f.id.clone(),
                    name: c.name,
                    device: me.clone(),
                    deleted: c.deleted,
                });
            }
        }
        result
    });
    let result = tokio::select! {
        // A scan in progress finishes its current batch on its own thread; we stop waiting.
        _ = cancel.cancelled() => return Err("service stopping".into()),
        r = scan => r,
    };
    match result {
        Ok(Ok(summary)) => {
            if summary.changed + summary.deleted > 0 {
                shared.local_changed(&folder.id);
                info!(
                    changed = summary.changed,
                    deleted = summary.deleted,
                    errors = summary.errors.len(),
                    "scanned"
                );
            }
            let err = (!summary.errors.is_empty()).then(|| {
                format!(
                    "{} entries skipped: {}",
                    summary.errors.len(),
                    summary
                        .errors
                        .iter()
                        .take(5)
                        .map(|e| format!("{}: {}", e.path, e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            });
            // Skipped entries are reported, but the folder itself is healthy.
            lock(&shared.folders)
                .entry(folder.id.clone())
                .or_default()
                .error = None;
            set_state(shared, &folder.id, "idle", None);
            if let Some(e) = err {
                shared.emit(Event::Log {
                    level: "warn".into(),
                    message: format!("folder {}: {e}", folder.id),
                });
            }
            Ok(())
        }
        Ok(Err(e)) => {
            let msg = e.to_string();
            set_state(shared, &folder.id, "error", Some(msg.clone()));
            Err(msg)
        }
        Err(e) => {
            let msg = format!("scan task failed: {e}");
            set_state(shared, &folder.id, "error", Some(msg.clone()));
            Err(msg)
        }
    }
}

/// Scans one folder, or all, through their tasks; answers when done.
pub async fn rescan(
    shared: &Arc<Shared>,
    folder: Option<String>,
) -> Result<serde_json::Value, String> {
    let config = shared.config();
    let ids: Vec<String> = match folder {
        Some(id) => {
            config.require_folder(&id).map_err(|e| e.to_string())?;
            vec![id]
        }
        None => config.folders.iter().map(|f| f.id.clone()).collect(),
    };
    let mut waits = Vec::new();
    for id in &ids {
        // The task may be restarting after a config change: give it a moment to appear.
        let mut sender = None;
        for _ in 0..50 {
            if let Some(t) = lock(&shared.folder_ctl.tasks).get(id) {
                sender = Some(t.rescan.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Some(tx) = sender else {
            return Err(format!("folder \"{id}\" is not running"));
        };
        let (rtx, rrx) = oneshot::channel();
        tx.send(FolderRequest::Scan(rtx))
            .await
            .map_err(|_| format!("folder \"{id}\" stopped"))?;
        waits.push(rrx);
    }
    let mut errors = Vec::new();
    for w in waits {
        match w.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("folder task stopped".into()),
        }
    }
    if errors.is_empty() {
        Ok(json!(ids))
    } else {
        Err(errors.join("; "))
    }
}

/// The folder error that stands for its name clashes, if any.
fn clash_error(clashes: &[(String, String)], caps: crate::sync::names::FsCaps) -> Option<String> {
    let (name, local) = clashes.first()?;
    Some(format!(
        "{} name clash(es) on this {} file system: {name:?} from a peer is the local {local:?}; neither is overwritten: rename one of them",
        clashes.len(),
        caps.describe()
    ))
}

/// Throws away a receive-only folder's local changes (`shoal folder revert`): the folder's
/// task scans it (so the index holds what is on disk), reverts, and pulls the peers'
/// versions back, in turn with its other scans and pulls.
pub async fn revert(shared: &Arc<Shared>, folder: String) -> Result<serde_json::Value, String> {
    let config = shared.config();
    let f = config.require_folder(&folder).map_err(|e| e.to_string())?;
    if f.mode != crate::config::FolderMode::ReceiveOnly {
        return Err(format!(
            "folder \"{}\" is {}: only a receive-only folder keeps local changes apart",
            f.id,
            f.mode.as_str()
        ));
    }
    let mut sender = None;
    for _ in 0..50 {
        if let Some(t) = lock(&shared.folder_ctl.tasks).get(&folder) {
            sender = Some(t.rescan.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Some(tx) = sender else {
        return Err(format!("folder \"{folder}\" is not running"));
    };
    let (rtx, rrx) = oneshot::channel();
    tx.send(FolderRequest::Revert(rtx))
        .await
        .map_err(|_| format!("folder \"{folder}\" stopped"))?;
    rrx.await
        .unwrap_or_else(|_| Err("folder task stopped".into()))
}

/// The revert itself, on a blocking thread: its report and the names to pull.
async fn revert_now(
    shared: &Arc<Shared>,
    folder: &FolderConfig,
) -> Result<(serde_json::Value, Vec<String>), String> {
    let s = shared.clone();
    let f = folder.clone();
    let report = tokio::task::spawn_blocking(move || {
        crate::sync::receive_only::revert(&s.db, &f, s.local.short())
    })
    .await
    .map_err(|e| format!("revert task failed: {e}"))?
    .map_err(|e| format!("{e:#}"))?;
    if !report.reverted.is_empty() {
        info!(
            reverted = report.reverted.len(),
            kept = report.kept.len(),
            "local changes reverted"
        );
        shared.local_changed(&folder.id);
    }
    Ok((
        crate::sync::receive_only::report_json(&report),
        report.reverted,
    ))
}

/// `status --json` as the running service sees it.
pub fn status_json(shared: &Arc<Shared>) -> serde_json::Value {
    let config = shared.config();
    let reader = shared.db.reader().ok();
    let states = lock(&shared.folders).clone();
    let folders: Vec<_> = config
        .folders
        .iter()
        .map(|f| {
            let (files, bytes) = reader
                .as_ref()
                .and_then(|r| r.local_counts(&f.id).ok())
                .unwrap_or((0, 0));
            let rt = states.get(&f.id).cloned().unwrap_or_default();
            let (need_files, need_bytes) = (rt.need_files, rt.need_bytes);
            let (state, error) = if f.paused {
                ("paused".to_string(), None)
            } else if rt.state.is_empty() {
                match check_marker(f) {
                    Ok(()) => ("idle".to_string(), None),
                    Err(e) => ("error".to_string(), Some(e.to_string())),
                }
            } else if rt.state != "error" && !rt.pull_errors.is_empty() {
                // A scan in between does not hide that files keep failing.
                (rt.state, pull_error_summary(&rt.pull_errors))
            } else {
                // Clashes stand until resolved, whatever cleared the last error.
                let error = rt.error.clone().or_else(|| {
                    clash_error(
                        &rt.name_clashes,
                        rt.fs_caps.unwrap_or(crate::sync::names::FsCaps::ASSUMED),
                    )
                });
                (rt.state.clone(), error)
            };
            let clashes: Vec<_> = rt
                .name_clashes
                .iter()
                .map(|(name, local)| json!({"name": name, "local": local}))
                .collect();
            let local_changes = reader
                .as_ref()
                .map(|r| crate::sync::receive_only::count(r, f))
                .unwrap_or(0);
            let pull_errors: Vec<_> = rt
                .pull_errors
                .iter()
                .take(PULL_ERRORS_LISTED)
                .map(|(name, e)| json!({"name": name, "error": e}))
                .collect();
            json!({
                "id": f.id, "label": f.label, "path": f.path, "mode": f.mode.as_str(),
                "state": state, "error": error, "pull_errors": pull_errors,
                "local_changes": local_changes,
                "local_files": files, "local_bytes": bytes,
                "need_files": need_files, "need_bytes": need_bytes,
                "file_system": rt.fs_caps.map(crate::sync::names::FsCaps::to_json),
                "name_clashes": clashes,
            })
        })
        .collect();
    let devices: Vec<_> = config
        .devices
        .iter()
        .map(|d| {
            let (connected, address, rin, rout) = shared.device_traffic(&d.id);
            json!({
                "id": d.id.to_string(), "name": d.name, "connected": connected,
                "address": address, "in_bytes_total": rin, "out_bytes_total": rout,
                "paused": d.paused,
            })
        })
        .collect();
    let listening: Vec<String> = lock(&shared.listening)
        .iter()
        .map(|a| a.to_string())
        .collect();
    json!({
        "device_id": shared.local.to_string(),
        "name": config.device.name,
        "service_running": true,
        "uptime_secs": shared.started.elapsed().as_secs(),
        "listen_addresses": listening,
        "folders": folders,
        "devices": devices,
    })
}

/// `device ls --json` as the running service sees it.
pub fn devices_json(shared: &Arc<Shared>) -> serde_json::Value {
    let config = shared.config();
    let list: Vec<_> = config
        .devices
        .iter()
        .map(|d| {
            let (connected, _, _, _) = shared.device_traffic(&d.id);
            json!({
                "id": d.id.to_string(), "name": d.name, "addresses": d.addresses,
                "connected": connected, "paused": d.paused,
            })
        })
        .collect();
    json!(list)
}
