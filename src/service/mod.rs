//! The service: boots and supervises everything a running device does, owns the event
//! bus, and answers the control API.
//!
//! Shutdown order (on SIGINT/SIGTERM or when the embedding dashboard quits): stop
//! accepting (listeners and control socket), close every device connection, stop folder
//! tasks, wait for every task (bounded), flush the index, remove the socket, release the
//! home lock. Every spawned task is tracked by one `TaskTracker` and stops on the
//! service's `CancellationToken`.

pub mod api;
mod control;
mod folders;
pub mod pending;
pub mod socket;

use crate::config::{Config, ConfigChange, Home, HomeLock, LockState};
use crate::db::Db;
use crate::identity::{DeviceId, Identity};
use crate::net::counted::Counters;
use crate::net::tls::TlsConfigs;
use crate::net::{ConnHandle, dialer, listen};
use crate::protocol::{ClusterConfig, ClusterDevice, ClusterFolder, Message};
use api::Event;
use pending::Pending;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "another shoal service is already running on the home {home:?}{}; stop it first (or use another --home)",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    AlreadyRunning { home: String, pid: Option<u32> },
    #[error(
        "cannot listen on {addr}: {source}; pick another address with `shoal init --listen HOST:PORT`"
    )]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot create the control socket {path:?}: {source}")]
    Socket {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Home(#[from] crate::config::HomeError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Tls(#[from] crate::net::tls::TlsError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Per device: bytes on the wire of connections that have ended, plus the live one.
#[derive(Default)]
struct Traffic {
    closed_in: u64,
    closed_out: u64,
}

/// A folder's runtime state as status shows it.
#[derive(Clone, Debug, Default)]
pub struct FolderRuntime {
    pub state: String,
    pub error: Option<String>,
    /// Regular files (and their bytes) this device still has to fetch or apply.
    pub need_files: u64,
    pub need_bytes: u64,
    /// How the folder's file system compares names (probed when the folder starts).
    pub fs_caps: Option<crate::sync::names::FsCaps>,
    /// Names from peers that clash with a local name here (remote name, local name), as
    /// of the last pull that met them.
    pub name_clashes: Vec<(String, String)>,
    /// Files whose last pull failed, by name, with the reason (shown until they succeed).
    pub pull_errors: std::collections::BTreeMap<String, String>,
    /// Of those, the regular files, with their sizes: still part of the need.
    pub pull_error_bytes: std::collections::BTreeMap<String, u64>,
}

/// What every part of the running service shares.
pub struct Shared {
    pub home: Home,
    pub identity: Identity,
    pub local: DeviceId,
    config: RwLock<Config>,
    /// Bumped on every config change; tasks that depend on the config watch it.
    config_gen: watch::Sender<u64>,
    pub db: Db,
    pub tls: TlsConfigs,
    pub events: broadcast::Sender<Event>,
    conns: Mutex<HashMap<DeviceId, ConnHandle>>,
    traffic: Mutex<HashMap<DeviceId, Traffic>>,
    /// Bumped whenever a device connects or disconnects (dialers wait on it).
    conn_gen: watch::Sender<u64>,
    serial: AtomicU64,
    pending: Mutex<Pending>,
    pub folders: Mutex<HashMap<String, FolderRuntime>>,
    pub tasks: TaskTracker,
    pub cancel: CancellationToken,
    pub started: Instant,
    /// The addresses actually bound (a configured port 0 becomes the real port).
    pub listening: Mutex<Vec<SocketAddr>>,
    folder_ctl: folders::FolderControl,
    /// Per folder: bumped after the local index changed (scan or pull); wakes the index
    /// senders.
    local_seq: Mutex<HashMap<String, watch::Sender<u64>>>,
}

/// Locks a mutex, recovering the data if a thread panicked while holding it: every value
/// guarded here stays consistent between statements, so the data is still good.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// The number of config changes so far: a cached [`Self::config`] is current while
    /// this is unchanged.
    pub fn config_generation(&self) -> u64 {
        *self.config_gen.borrow()
    }

    pub fn config(&self) -> Config {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn device_name(&self) -> String {
        self.config().device.name
    }

    pub fn is_trusted(&self, id: &DeviceId) -> bool {
        self.config().device(id).is_some()
    }

    pub fn is_device_paused(&self, id: &DeviceId) -> bool {
        self.config().device(id).map(|d| d.paused).unwrap_or(false)
    }

    pub fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    pub fn next_serial(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn connection_changes(&self) -> watch::Receiver<u64> {
        self.conn_gen.subscribe()
    }

    pub fn is_connected(&self, id: &DeviceId) -> bool {
        lock(&self.conns).contains_key(id)
    }

    /// Registers a trusted connection. When one to the same device exists: a connection
    /// in the same direction replaces the old one (the peer restarted); in the other
    /// direction (both dialled at once) the one dialled by the device with the smaller ID
    /// survives, which both sides decide alike.
    pub fn register(&self, peer: DeviceId, h: ConnHandle) -> Result<(), String> {
        let mut conns = lock(&self.conns);
        if !self.is_trusted(&peer) {
            return Err("not trusted".into());
        }
        if let Some(old) = conns.get(&peer) {
            let keep_new = if old.outgoing == h.outgoing {
                true
            } else {
                let prefer_outgoing = self.local < peer;
                h.outgoing == prefer_outgoing
            };
            if !keep_new {
                return Err("duplicate connection".into());
            }
            old.cancel.cancel();
            self.fold_traffic(&peer, &old.counters);
        }
        let address = h.address.to_string();
        conns.insert(peer, h);
        drop(conns);
        self.conn_gen.send_modify(|g| *g += 1);
        self.emit(Event::DeviceConnected {
            device: peer.to_string(),
            address,
        });
        Ok(())
    }

    fn fold_traffic(&self, peer: &DeviceId, c: &Counters) {
        let (r, w) = c.get();
        let mut t = lock(&self.traffic);
        let e = t.entry(*peer).or_default();
        e.closed_in += r;
        e.closed_out += w;
    }

    pub fn unregister(&self, peer: &DeviceId, serial: u64, reason: &str) {
        let mut conns = lock(&self.conns);
        let Some(h) = conns.get(peer) else { return };
        if h.serial != serial {
            return;
        }
        let h = conns.remove(peer);
        drop(conns);
        if let Some(h) = h {
            self.fold_traffic(peer, &h.counters);
        }
        self.conn_gen.send_modify(|g| *g += 1);
        self.emit(Event::DeviceDisconnected {
            device: peer.to_string(),
            reason: reason.to_string(),
        });
    }

    /// (connected, address, bytes in, bytes out) of a device since the service started.
    pub fn device_traffic(&self, id: &DeviceId) -> (bool, Option<String>, u64, u64) {
        let (mut rin, mut rout) = lock(&self.traffic)
            .get(id)
            .map(|t| (t.closed_in, t.closed_out))
            .unwrap_or((0, 0));
        let conns = lock(&self.conns);
        let live = conns.get(id);
        if let Some(h) = live {
            let (r, w) = h.counters.get();
            rin += r;
            rout += w;
        }
        (
            live.is_some(),
            live.map(|h| h.address.to_string()),
            rin,
            rout,
        )
    }

    /// Runs one index sender per folder shared both ways with a connected peer (per the
    /// peer's last cluster config), and stops those whose folder is no longer shared.
    pub fn start_senders(self: &Arc<Self>, peer: &DeviceId, conn: &ConnHandle) {
        let config = self.config();
        let Some(cc) = lock(&conn.sync.peer_cc).clone() else {
            return;
        };
        let mut senders = lock(&conn.sync.senders);
        senders.retain(|folder, token| {
            let keep = config
                .folder(folder)
                .map(|f| f.devices.contains(peer) && !f.paused)
                .unwrap_or(false);
            if !keep {
                token.cancel();
            }
            keep
        });
        for f in &cc.folders {
            let Some(ours) = config
                .folder(&f.id)
                .filter(|c| c.devices.contains(peer) && !c.paused)
            else {
                continue;
            };
            if senders.contains_key(&ours.id) {
                continue;
            }
            let our_index = self
                .db
                .reader()
                .ok()
                .and_then(|r| r.local_index_id(&ours.id).ok().flatten())
                .unwrap_or(0);
            let from = f
                .devices
                .iter()
                .find(|d| d.id == self.local)
                .filter(|d| d.index_id == our_index && our_index != 0)
                .map(|d| d.max_sequence)
                .unwrap_or(0);
            let token = conn.cancel.child_token();
            senders.insert(ours.id.clone(), token.clone());
            self.tasks.spawn(crate::sync::index::send(
                self.clone(),
                *peer,
                conn.clone(),
                ours.id.clone(),
                from,
                token,
            ));
        }
    }

    /// A receiver that wakes when the local index of `folder` changes.
    pub fn local_changes(&self, folder: &str) -> watch::Receiver<u64> {
        lock(&self.local_seq)
            .entry(folder.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes everyone waiting for local changes of `folder`.
    pub fn local_changed(&self, folder: &str) {
        if let Some(tx) = lock(&self.local_seq).get(folder) {
            tx.send_modify(|g| *g += 1);
        }
    }

    /// The live connection to a device.
    pub fn connection(&self, id: &DeviceId) -> Option<ConnHandle> {
        lock(&self.conns).get(id).cloned()
    }

    /// Records what a folder still needs, and tells subscribers.
    /// How `folder`'s file system compares names; assumed to fold until probed.
    pub fn fs_caps(&self, folder: &str) -> crate::sync::names::FsCaps {
        lock(&self.folders)
            .get(folder)
            .and_then(|f| f.fs_caps)
            .unwrap_or(crate::sync::names::FsCaps::ASSUMED)
    }

    /// Files (and bytes) whose last pull failed and that wait for a retry, leaving out
    /// the names `except` (those being pulled now).
    pub fn failed_need(
        &self,
        folder: &str,
        except: &std::collections::HashSet<String>,
    ) -> (u64, u64) {
        lock(&self.folders)
            .get(folder)
            .map(|rt| {
                rt.pull_error_bytes
                    .iter()
                    .filter(|(n, _)| !except.contains(*n))
                    .fold((0, 0), |(f, b), (_, s)| (f + 1, b + s))
            })
            .unwrap_or((0, 0))
    }

    pub fn set_need(&self, folder: &str, files: u64, bytes: u64) {
        let mut map = lock(&self.folders);
        let e = map.entry(folder.to_string()).or_default();
        if (e.need_files, e.need_bytes) == (files, bytes) {
            return;
        }
        e.need_files = files;
        e.need_bytes = bytes;
        drop(map);
        self.emit(Event::SyncProgress {
            folder: folder.to_string(),
            need_files: files,
            need_bytes: bytes,
        });
    }

    /// Queues names for the folder's puller.
    pub fn queue_pull(&self, folder: &str, names: Vec<String>) {
        self.folder_ctl.queue_pull(folder, names);
    }

    /// Asks the folder's task for a full rescan soon.
    pub fn request_rescan(&self, folder: &str) {
        self.folder_ctl.queue_rescan(folder);
    }

    pub fn record_pending_device(&self, id: &DeviceId, name: &str, addr: SocketAddr) {
        let now = now_rfc3339();
        let mut p = lock(&self.pending);
        p.add_device(id, name, &addr.to_string(), &now);
        if let Err(e) = p.save(&self.home.state_dir) {
            warn!(error = %e, "cannot save pending.json");
        }
        drop(p);
        info!(device = %id, %name, %addr, "unknown device tried to connect; listed as pending (`shoal accept device ID` trusts it)");
        self.emit(Event::PendingDevice {
            device: id.to_string(),
            name: name.to_string(),
            address: addr.to_string(),
        });
    }

    pub fn pending(&self) -> Pending {
        lock(&self.pending).clone()
    }

    /// The folders shared with `peer`, and where each index stands, as we hold them.
    pub fn cluster_config_for(&self, peer: &DeviceId) -> ClusterConfig {
        let config = self.config();
        let reader = self.db.reader().ok();
        let mut folders = Vec::new();
        for f in config.folders.iter().filter(|f| f.devices.contains(peer)) {
            let mut devices = Vec::new();
            let (index_id, max_sequence) = reader
                .as_ref()
                .and_then(|r| r.index_info(&f.id, self.local).ok().flatten())
                .unwrap_or((0, 0));
            devices.push(ClusterDevice {
                id: self.local,
                name: config.device.name.clone(),
                addresses: Vec::new(),
                index_id,
                max_sequence,
            });
            for d in &f.devices {
                let dc = config.device(d);
                let (index_id, max_sequence) = reader
                    .as_ref()
                    .and_then(|r| r.index_info(&f.id, *d).ok().flatten())
                    .unwrap_or((0, 0));
                devices.push(ClusterDevice {
                    id: *d,
                    name: dc.map(|x| x.name.clone()).unwrap_or_default(),
                    addresses: dc.map(|x| x.addresses.clone()).unwrap_or_default(),
                    index_id,
                    max_sequence,
                });
            }
            folders.push(ClusterFolder {
                id: f.id.clone(),
                label: f.label.clone(),
                devices,
            });
        }
        ClusterConfig { folders }
    }

    /// The peer's cluster config: offers of folders we don't share with it become pending;
    /// for each folder both share, an index sender starts from where the peer stands.
    pub fn handle_cluster_config(
        self: &Arc<Self>,
        peer: &DeviceId,
        conn: &ConnHandle,
        cc: ClusterConfig,
    ) {
        *lock(&conn.sync.peer_cc) = Some(cc.clone());
        self.start_senders(peer, conn);
        let config = self.config();
        let mut changed = false;
        let mut p = lock(&self.pending);
        for f in &cc.folders {
            let shared_with_peer = config
                .folder(&f.id)
                .map(|c| c.devices.contains(peer))
                .unwrap_or(false);
            if shared_with_peer {
                continue;
            }
            if crate::config::validate_folder_id(&f.id).is_err() {
                continue;
            }
            if p.add_folder(&f.id, &f.label, peer) {
                changed = true;
                self.emit(Event::PendingFolder {
                    folder: f.id.clone(),
                    label: f.label.clone(),
                    device: peer.to_string(),
                });
                info!(folder = %f.id, label = %f.label, "device offers a folder; listed as pending (`shoal accept folder ID --path PATH`)");
            }
        }
        if changed && let Err(e) = p.save(&self.home.state_dir) {
            warn!(error = %e, "cannot save pending.json");
        }
    }

    /// Applies a config change: validates, saves, and acts on it.
    pub fn apply_change(
        self: &Arc<Self>,
        change: &ConfigChange,
    ) -> Result<Config, crate::config::ConfigError> {
        let mut guard = self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = guard.clone();
        change.apply(&mut next, &self.local, &self.home.dirs_canonical())?;
        let released = leaves_receive_only(&guard, change);
        if let ConfigChange::AddFolder { path, .. } = change {
            crate::config::change::create_folder_root(path)?;
        }
        next.save(&self.home)?;
        *guard = next.clone();
        drop(guard);
        self.after_config_change(change);
        if let Some(folder) = released.and_then(|id| next.folder(&id).cloned()) {
            // What was held back goes out now (before the next scan's changes).
            let s = self.clone();
            self.tasks.spawn_blocking(move || {
                match crate::sync::receive_only::release(&s.db, &folder) {
                    Ok(0) => {}
                    Ok(n) => {
                        info!(folder = %folder.id, changes = n, "no longer receive-only: sending the local changes");
                        s.local_changed(&folder.id);
                    }
                    Err(e) => warn!(folder = %folder.id, error = %e, "cannot release the local changes"),
                }
            });
        }
        Ok(next)
    }

    fn after_config_change(self: &Arc<Self>, change: &ConfigChange) {
        let mut p = lock(&self.pending);
        let mut dirty = false;
        match change {
            ConfigChange::AddDevice { id, .. } => dirty |= p.remove_device(id),
            ConfigChange::AddFolder { id, .. } => dirty |= p.remove_folder(id),
            ConfigChange::RemoveFolder { folder } => {
                // Its files stay on disk; its index goes.
                if let Err(e) = self.db.drop_folder(folder) {
                    warn!(%folder, error = %e, "cannot drop the removed folder's index");
                }
            }
            _ => {}
        }
        if dirty {
            let _ = p.save(&self.home.state_dir);
        }
        drop(p);
        // Connections to devices that are no longer trusted, or now paused, end here.
        let config = self.config();
        for (id, h) in lock(&self.conns).iter() {
            match config.device(id) {
                None => h.cancel.cancel(),
                Some(d) if d.paused => h.cancel.cancel(),
                Some(_) => {
                    // Shares may have changed: tell the peer what it now gets, and send
                    // (or stop sending) our index of each folder accordingly.
                    let _ =
                        h.tx.try_send(Message::ClusterConfig(self.cluster_config_for(id)));
                    self.start_senders(id, h);
                }
            }
        }
        self.config_gen.send_modify(|g| *g += 1);
        self.emit(Event::ConfigChanged);
    }
}

/// The folder a change takes out of receive-only mode, if it does.
pub fn leaves_receive_only(
    before: &crate::config::Config,
    change: &ConfigChange,
) -> Option<String> {
    use crate::config::FolderMode;
    match change {
        ConfigChange::SetFolderMode { folder, mode }
            if *mode != FolderMode::ReceiveOnly
                && before
                    .folder(folder)
                    .is_some_and(|f| f.mode == FolderMode::ReceiveOnly) =>
        {
            Some(folder.clone())
        }
        _ => None,
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Takes the home for a service: the lock, marked with our PID. A command holding the lock
/// for a moment is waited for (up to 2 s); a service holding it is an error.
pub fn lock_home(home: &Home) -> Result<HomeLock, ServiceError> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match HomeLock::try_acquire(home)? {
            LockState::Acquired(mut l) => {
                let _ = l.mark_service();
                return Ok(l);
            }
            LockState::Held { pid: Some(pid) } => {
                return Err(ServiceError::AlreadyRunning {
                    home: home.state_dir.display().to_string(),
                    pid: Some(pid),
                });
            }
            LockState::Held { pid: None } if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            LockState::Held { pid } => {
                return Err(ServiceError::AlreadyRunning {
                    home: home.state_dir.display().to_string(),
                    pid,
                });
            }
        }
    }
}

/// A service that has started: its shared state and how to stop it.
pub struct Running {
    pub shared: Arc<Shared>,
    _lock: HomeLock,
    socket_path: std::path::PathBuf,
}

impl Running {
    /// Starts everything on the current tokio runtime. The home must be initialised.
    pub async fn start(home: Home) -> Result<Running, ServiceError> {
        let home_lock = lock_home(&home)?;
        let identity = Identity::load(&home.config_dir)?;
        let local = identity.id;
        let config = Config::load(&home, Some(&local))?;
        let db = Db::open(&home.db_path(), local)?;
        let tls = crate::net::tls::configs(&identity)?;
        let (events, _) = broadcast::channel(1024);
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::load(&home.state_dir)),
            home: home.clone(),
            identity,
            local,
            config: RwLock::new(config.clone()),
            config_gen: watch::channel(0).0,
            db,
            tls,
            events,
            conns: Mutex::new(HashMap::new()),
            traffic: Mutex::new(HashMap::new()),
            conn_gen: watch::channel(0).0,
            serial: AtomicU64::new(0),
            folders: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            cancel: cancel.clone(),
            started: Instant::now(),
            listening: Mutex::new(Vec::new()),
            folder_ctl: folders::FolderControl::default(),
            local_seq: Mutex::new(HashMap::new()),
        });
        // Listeners first: a bad address fails the start before anything else runs.
        for a in &config.device.listen {
            let addr = crate::config::validate_listen_addr(a)?;
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServiceError::Listen {
                    addr: a.clone(),
                    source,
                })?;
            let bound = l.local_addr().map_err(|source| ServiceError::Listen {
                addr: a.clone(),
                source,
            })?;
            info!(address = %bound, "listening");
            lock(&shared.listening).push(bound);
            shared
                .tasks
                .spawn(listen(shared.clone(), l, cancel.child_token()));
        }
        let socket_path = home.socket_path();
        let listener = control::bind(&socket_path)?;
        shared.tasks.spawn(control::serve(
            shared.clone(),
            listener,
            cancel.child_token(),
        ));
        shared.tasks.spawn(supervise_dialers(shared.clone()));
        shared.tasks.spawn(forget_old_tombstones(shared.clone()));
        folders::start(&shared);
        info!(device = %local, "service started");
        Ok(Running {
            shared,
            _lock: home_lock,
            socket_path,
        })
    }

    /// Stops everything in order, within about 4 s.
    pub async fn stop(self) {
        let shared = self.shared;
        shared.cancel.cancel();
        shared.tasks.close();
        if tokio::time::timeout(Duration::from_secs(4), shared.tasks.wait())
            .await
            .is_err()
        {
            warn!("some tasks did not stop within 4 s; exiting anyway");
        }
        let _ = std::fs::remove_file(&self.socket_path);
        if let Err(e) = shared.db.checkpoint() {
            warn!(error = %e, "index checkpoint at shutdown failed");
        }
        info!("service stopped");
    }
}

/// How long a deletion is remembered: long enough that a device offline for months does
/// not bring deleted files back. A device that returns after longer may resurrect files
/// it still has (never delete newer data).
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(180 * 86_400);

/// Forgets tombstones older than [`TOMBSTONE_TTL`], a minute after start and then daily.
async fn forget_old_tombstones(shared: Arc<Shared>) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = Duration::from_secs(86_400);
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .saturating_sub(TOMBSTONE_TTL.as_secs());
        let db = shared.db.clone();
        match tokio::task::spawn_blocking(move || db.forget_tombstones(before)).await {
            Ok(Ok(n)) if n > 0 => info!(forgotten = n, "forgot deletions older than 180 days"),
            Ok(Err(e)) => warn!(error = %e, "cannot forget old deletions"),
            _ => {}
        }
    }
}

/// Keeps one dialer per trusted device with addresses, in step with the config.
async fn supervise_dialers(shared: Arc<Shared>) {
    let mut gen_rx = shared.config_gen.subscribe();
    let mut running: HashMap<DeviceId, (Vec<String>, CancellationToken)> = HashMap::new();
    loop {
        let config = shared.config();
        let wanted: HashMap<DeviceId, Vec<String>> = config
            .devices
            .iter()
            .filter(|d| !d.addresses.is_empty())
            .map(|d| (d.id, d.addresses.clone()))
            .collect();
        running.retain(|id, (addrs, token)| {
            let keep = wanted.get(id) == Some(addrs);
            if !keep {
                token.cancel();
            }
            keep
        });
        for (id, addrs) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            let token = shared.cancel.child_token();
            shared
                .tasks
                .spawn(dialer(shared.clone(), id, addrs.clone(), token.clone()));
            running.insert(id, (addrs, token));
        }
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            r = gen_rx.changed() => if r.is_err() { return },
        }
    }
}

/// `shoal serve`: runs until SIGINT or SIGTERM.
pub fn serve_forever(home: Home) -> Result<(), ServiceError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("shoal-rt")
        .build()
        .map_err(ServiceError::Runtime)?;
    rt.block_on(async {
        let running = Running::start(home).await?;
        wait_for_signal().await;
        info!("stopping");
        running.stop().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the default action (exit) still stops us.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
