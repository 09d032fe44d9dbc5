//! The dashboard's side of the control socket: every byte to or from the service goes
//! through the threads started here, never through the render loop.
//!
//! - The event thread subscribes (a connection of its own) and turns each event line into
//!   an [`Action::Event`]; when the service goes away it says so and retries every second.
//! - The refresh thread re-reads status, folders, devices and pending on request. Requests
//!   that pile up while it works are coalesced into one, and refreshes are spaced by at
//!   least [`MIN_REFRESH_GAP`], so a burst of events costs a handful of reads, not one each.
//! - Each action (rescan, a config change…) runs on a short-lived thread with its own
//!   connection, so a long rescan never holds up refreshes.
//!
//! It must never touch the engine except through [`Client`].

use super::app::{Conflict, DeviceConf, FolderConf, Snapshot, Status};
use super::update::{Action, Effect};
use crate::service::api::{Event, Request};
use crate::service::pending::Pending;
use crate::service::socket::{Client, ClientError};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Refreshes are at least this far apart (events still change the state at once).
pub const MIN_REFRESH_GAP: Duration = Duration::from_millis(250);
/// How often a lost subscription is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The running threads' handles.
pub struct Link {
    socket: PathBuf,
    actions: Sender<Action>,
    refresh: Sender<()>,
    /// Set when the dashboard quits: the event thread stops retrying.
    stop: Arc<AtomicBool>,
}

impl Link {
    /// Starts the event and refresh threads; their output goes to `actions`.
    pub fn start(socket: PathBuf, actions: Sender<Action>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (refresh, refresh_rx) = channel();
        {
            let (socket, tx, stop) = (socket.clone(), actions.clone(), stop.clone());
            std::thread::Builder::new()
                .name("tui-events".into())
                .spawn(move || events(socket, tx, stop))?;
        }
        {
            let (socket, tx) = (socket.clone(), actions.clone());
            std::thread::Builder::new()
                .name("tui-refresh".into())
                .spawn(move || refreshes(socket, refresh_rx, tx))?;
        }
        let link = Self {
            socket,
            actions,
            refresh,
            stop,
        };
        link.execute(Effect::Refresh);
        Ok(link)
    }

    /// Carries out what `update` asked for.
    pub fn execute(&self, effect: Effect) {
        match effect {
            Effect::Refresh => {
                let _ = self.refresh.send(());
            }
            Effect::LoadConflicts => {
                let (socket, tx) = (self.socket.clone(), self.actions.clone());
                let spawned = std::thread::Builder::new()
                    .name("tui-conflicts".into())
                    .spawn(move || {
                        let result = Client::connect(&socket)
                            .and_then(|mut c| c.call(&Request::Conflicts { folder: None }))
                            .and_then(|v| Ok(serde_json::from_value::<Vec<Conflict>>(v)?))
                            .map_err(|e| e.to_string());
                        let _ = tx.send(Action::Conflicts(result));
                    });
                if let Err(e) = spawned {
                    warn!(error = %e, "cannot start a thread for a request");
                }
            }
            Effect::Call { what, request } => {
                let (socket, tx) = (self.socket.clone(), self.actions.clone());
                let spawned =
                    std::thread::Builder::new()
                        .name("tui-call".into())
                        .spawn(move || {
                            debug!(?request, "sending");
                            let result = Client::connect(&socket)
                                .and_then(|mut c| c.call(&request))
                                .map(|_| ())
                                .map_err(|e| e.to_string());
                            let _ = tx.send(Action::Done { what, result });
                        });
                if let Err(e) = spawned {
                    warn!(error = %e, "cannot start a thread for a request");
                }
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn subscribe(socket: &std::path::Path) -> Result<Client, ClientError> {
    let mut c = Client::connect(socket)?;
    c.call(&Request::Subscribe)?;
    Ok(c)
}

fn events(socket: PathBuf, tx: Sender<Action>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match subscribe(&socket) {
            Ok(mut client) => {
                if tx.send(Action::LinkUp).is_err() {
                    return;
                }
                loop {
                    let line = match client.read_line() {
                        Ok(l) => l,
                        Err(e) => {
                            if tx.send(Action::LinkDown(e.to_string())).is_err() {
                                return;
                            }
                            break;
                        }
                    };
                    match serde_json::from_str::<Event>(&line) {
                        Ok(e) => {
                            if tx.send(Action::Event(e)).is_err() {
                                return;
                            }
                        }
                        // A newer service may send events this dashboard does not know.
                        Err(e) => debug!(error = %e, %line, "unknown event"),
                    }
                }
            }
            Err(e) => {
                if tx.send(Action::LinkDown(e.to_string())).is_err() {
                    return;
                }
            }
        }
        std::thread::sleep(RETRY);
    }
}

fn refreshes(socket: PathBuf, rx: Receiver<()>, tx: Sender<Action>) {
    let mut client: Option<Client> = None;
    while rx.recv().is_ok() {
        while rx.try_recv().is_ok() {}
        let started = Instant::now();
        let action = match fetch(&socket, &mut client) {
            Ok(s) => Action::Snapshot(Box::new(s)),
            Err(e) => {
                client = None;
                Action::RefreshFailed(e.to_string())
            }
        };
        if tx.send(action).is_err() {
            return;
        }
        std::thread::sleep(MIN_REFRESH_GAP.saturating_sub(started.elapsed()));
    }
}

fn fetch(socket: &std::path::Path, client: &mut Option<Client>) -> Result<Snapshot, ClientError> {
    let c = match client {
        Some(c) => c,
        None => client.insert(Client::connect(socket)?),
    };
    let status: Status = serde_json::from_value(c.call(&Request::Status)?)?;
    // `folders` is newer than the rest: a service without it still shows.
    let folders: Vec<FolderConf> = match c.call(&Request::Folders) {
        Ok(v) => serde_json::from_value(v)?,
        Err(ClientError::Refused(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    let devices: Vec<DeviceConf> = serde_json::from_value(c.call(&Request::Devices)?)?;
    let pending: Pending = serde_json::from_value(c.call(&Request::Pending)?)?;
    Ok(Snapshot {
        status,
        folders,
        devices,
        pending,
        taken: Instant::now(),
    })
}
