//! The control API server: JSON lines over the Unix socket in the home.

use super::api::{Answer, Event, Request};
use super::pending::Pending;
use super::socket::SocketPath;
use super::{ServiceError, Shared};
use crate::config::ConfigChange;
use crate::identity::DeviceId;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Longest request line accepted; a client sending more is cut off.
const MAX_REQUEST: usize = 1 << 20;

/// Binds the socket, replacing a file left by a dead service (we hold the home lock, so
/// no live service owns it), with mode 0600.
pub fn bind(path: &Path) -> Result<UnixListener, ServiceError> {
    let err = |source| ServiceError::Socket {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => debug!("removed a stale control socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let addr = SocketPath::new(path).map_err(err)?;
    let listener = UnixListener::bind(&addr.path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(listener)
}

pub async fn serve(shared: Arc<Shared>, listener: UnixListener, cancel: CancellationToken) {
    let uid = rustix::process::getuid().as_raw();
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!(error = %e, "control accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Nobody but our own user may drive the service (the 0600 mode says the same).
        match stream.peer_cred() {
            Ok(c) if c.uid() == uid || c.uid() == 0 => {}
            _ => continue,
        }
        let shared2 = shared.clone();
        let cancel = cancel.clone();
        shared.tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = client(shared2, stream) => if let Err(e) = r { debug!(error = %e, "control client ended") },
            }
        });
    }
}

async fn client(shared: Arc<Shared>, stream: UnixStream) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    loop {
        line.clear();
        let n = tokio::io::AsyncReadExt::take(&mut rd, MAX_REQUEST as u64)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let answer = match serde_json::from_str::<Request>(&line) {
            Err(e) => Answer::err(format!("bad request: {e}")),
            Ok(Request::Subscribe) => {
                let rx = shared.events.subscribe();
                write_line(&mut wr, &Answer::ok(json!("subscribed"))).await?;
                return stream_events(rx, wr).await;
            }
            Ok(req) => handle(&shared, req).await,
        };
        write_line(&mut wr, &answer).await?;
    }
}

async fn write_line<T: serde::Serialize>(
    wr: &mut tokio::net::unix::OwnedWriteHalf,
    v: &T,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    wr.write_all(&bytes).await
}

async fn stream_events(
    mut rx: tokio::sync::broadcast::Receiver<Event>,
    mut wr: tokio::net::unix::OwnedWriteHalf,
) -> std::io::Result<()> {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match rx.recv().await {
            Ok(e) => write_line(&mut wr, &e).await?,
            Err(RecvError::Lagged(n)) => {
                // A slow subscriber misses events; tell it so it can re-read the state.
                write_line(
                    &mut wr,
                    &Event::Log {
                        level: "warn".into(),
                        message: format!("{n} events dropped: subscriber too slow"),
                    },
                )
                .await?
            }
            Err(RecvError::Closed) => return Ok(()),
        }
    }
}

fn parse_id(s: &str) -> Result<DeviceId, String> {
    s.parse::<DeviceId>()
        .map_err(|e| format!("\"{s}\" is not a valid device ID: {e}"))
}

async fn handle(shared: &Arc<Shared>, req: Request) -> Answer {
    let result: Result<serde_json::Value, String> = match req {
        Request::Status => Ok(super::folders::status_json(shared)),
        Request::Devices => Ok(super::folders::devices_json(shared)),
        Request::Pending => serde_json::to_value(shared.pending()).map_err(|e| e.to_string()),
        Request::Folders => Ok(folders_json(shared)),
        Request::Change { change } => apply(shared, change).await,
        Request::AcceptDevice { id, name } => match parse_id(&id) {
            Err(e) => Err(e),
            Ok(id) => {
                let name = name.or_else(|| {
                    shared
                        .pending()
                        .devices
                        .iter()
                        .find(|d| d.id == id.to_string())
                        .map(|d| d.name.clone())
                        .filter(|n| !n.is_empty())
                });
                // The address a pending device came from is an ephemeral port, not where it
                // listens: it is not dialled; the device dials us, or gets an --addr later.
                apply(
                    shared,
                    ConfigChange::AddDevice {
                        id,
                        name,
                        addresses: Vec::new(),
                    },
                )
                .await
            }
        },
        Request::AcceptFolder { folder, path } => accept_folder(shared, &folder, &path).await,
        Request::DismissDevice { id } => match parse_id(&id) {
            Err(e) => Err(e),
            Ok(id) => dismiss(
                shared,
                |p| p.remove_device(&id),
                "no pending device with that ID",
            ),
        },
        Request::DismissFolder { folder } => dismiss(
            shared,
            |p| p.remove_folder(&folder),
            "no pending folder with that ID",
        ),
        Request::Rescan { folder } => super::folders::rescan(shared, folder).await,
        Request::Revert { folder } => super::folders::revert(shared, folder).await,
        Request::Conflicts { folder } => conflicts(shared, folder).await,
        Request::Subscribe => Err("subscribe must be the connection's first request".into()),
    };
    match result {
        Ok(v) => Answer::ok(v),
        Err(e) => Answer::err(e),
    }
}

/// `folder ls --json`'s shape, from the live config.
fn folders_json(shared: &Arc<Shared>) -> serde_json::Value {
    let list: Vec<_> = shared
        .config()
        .folders
        .iter()
        .map(|f| {
            json!({
                "id": f.id, "label": f.label, "path": f.path, "mode": f.mode.as_str(),
                "devices": f.devices.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "paused": f.paused,
            })
        })
        .collect();
    json!(list)
}

/// The conflict copies in the local index, as `shoal conflicts --json` lists them.
async fn conflicts(
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
    let db = shared.db.clone();
    // A walk of every local entry: off the async workers.
    tokio::task::spawn_blocking(move || {
        let reader = db.reader().map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for id in &ids {
            reader
                .for_each_local(id, |e| {
                    if !e.deleted
                        && e.file_type == crate::protocol::FileType::File
                        && let Some((original, device, created)) =
                            crate::sync::conflict::parse_copy_name(&e.name)
                    {
                        out.push(json!({
                            "folder": id, "name": e.name, "original": original,
                            "device": device, "created": created,
                        }));
                    }
                    Ok::<(), crate::db::DbError>(())
                })
                .map_err(|e| e.to_string())?;
        }
        out.sort_by(|a, b| {
            b["created"]
                .as_str()
                .cmp(&a["created"].as_str())
                .then(a["name"].as_str().cmp(&b["name"].as_str()))
        });
        Ok(json!(out))
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn apply(shared: &Arc<Shared>, change: ConfigChange) -> Result<serde_json::Value, String> {
    let s = shared.clone();
    // Saving the config fsyncs: keep it off the async workers.
    tokio::task::spawn_blocking(move || s.apply_change(&change).map(|_| json!(null)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

fn dismiss(
    shared: &Arc<Shared>,
    f: impl FnOnce(&mut Pending) -> bool,
    missing: &str,
) -> Result<serde_json::Value, String> {
    let mut p = super::lock(&shared.pending);
    if !f(&mut p) {
        return Err(missing.to_string());
    }
    p.save(&shared.home.state_dir).map_err(|e| e.to_string())?;
    Ok(json!(null))
}

async fn accept_folder(
    shared: &Arc<Shared>,
    folder: &str,
    path: &str,
) -> Result<serde_json::Value, String> {
    let pending = shared.pending();
    let Some(offer) = pending.folders.iter().find(|f| f.id == folder) else {
        return Err(format!(
            "no trusted device offered folder \"{folder}\"; `shoal pending` lists the offers"
        ));
    };
    let config = shared.config();
    let devices: Vec<DeviceId> = offer
        .offered_by
        .iter()
        .filter_map(|s| s.parse().ok())
        .filter(|d| config.device(d).is_some())
        .collect();
    if config.folder(folder).is_some() {
        // We have the folder already: accepting shares it with those who offered it.
        for d in devices {
            if !config
                .folder(folder)
                .map(|f| f.devices.contains(&d))
                .unwrap_or(true)
            {
                apply(
                    shared,
                    ConfigChange::ShareFolder {
                        folder: folder.to_string(),
                        device: d,
                    },
                )
                .await?;
            }
        }
        let _ = dismiss(shared, |p| p.remove_folder(folder), "");
        return Ok(json!(folder));
    }
    let path =
        crate::config::change::normalize_folder_path(Path::new(path)).map_err(|e| e.to_string())?;
    apply(
        shared,
        ConfigChange::AddFolder {
            id: folder.to_string(),
            label: if offer.label.is_empty() {
                folder.to_string()
            } else {
                offer.label.clone()
            },
            path,
            mode: Default::default(),
            devices,
        },
    )
    .await?;
    Ok(json!(folder))
}
