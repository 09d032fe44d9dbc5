//! Fixed sample state for the dashboard's tests: no service, no clock, no randomness.

use super::app::{
    App, Conflict, Conflicts, DeviceConf, DeviceStatus, FileChange, FolderConf, FolderStatus,
    Level, LinkState, LogText, ServiceKind, Snapshot, Status,
};
use crate::identity::DeviceId;
use crate::service::api::Event;
use crate::service::pending::{Pending, PendingDevice, PendingFolder};
use std::time::Instant;
use time::macros::datetime;

/// The ID of one of Syncthing's real test certificates: valid, and nobody's here.
pub const STRANGER: &str = "IICARZI-OR523G3-TAED5QZ-3A2LATC-DNYMGGA-FTBM734-PTTWSGI-3H3A4QG";

pub fn id(n: u8) -> String {
    DeviceId::from_bytes([n; 32]).to_string()
}

/// The long error a folder whose disk is gone shows.
pub const LONG_ERROR: &str = "folder \"backup-x1\": the marker \"/mnt/usb/Backup\"/.shoal is missing, so the folder is stopped (no deletion is inferred from a vanished disk); if the folder's content is really there, recreate the marker with `mkdir \"/mnt/usb/Backup\"/.shoal`";

fn folder(id: &str, label: &str, path: &str, mode: &str, state: &str) -> FolderStatus {
    FolderStatus {
        id: id.into(),
        label: label.into(),
        path: path.into(),
        mode: mode.into(),
        state: state.into(),
        error: None,
        local_files: 1204,
        local_bytes: 3_214_000_000,
        need_files: 0,
        need_bytes: 0,
    }
}

pub fn status() -> Status {
    let mut music = folder(
        "music-4hq",
        "Music",
        "/home/ana/Music",
        "send-receive",
        "syncing",
    );
    music.local_files = 812;
    music.local_bytes = 2_100_000_000;
    music.need_files = 12;
    music.need_bytes = 340_000_000;
    let mut backup = folder(
        "backup-x1",
        "Backup",
        "/mnt/usb/Backup",
        "receive-only",
        "error",
    );
    backup.error = Some(LONG_ERROR.into());
    let mut notes = folder("notes", "Notes", "/home/ana/Notes", "send-only", "paused");
    notes.local_files = 96;
    notes.local_bytes = 1_400_000;
    Status {
        device_id: id(1),
        name: "alpha".into(),
        uptime_secs: 3_725,
        listen_addresses: vec!["0.0.0.0:22100".into()],
        folders: vec![
            folder(
                "docs-7f3k2",
                "Docs",
                "/home/ana/Docs",
                "send-receive",
                "idle",
            ),
            music,
            backup,
            notes,
        ],
        devices: vec![
            DeviceStatus {
                id: id(2),
                name: "laptop".into(),
                connected: true,
                address: Some("192.168.1.20:22100".into()),
                in_bytes_total: 10_000_000,
                out_bytes_total: 2_000_000,
                paused: false,
            },
            DeviceStatus {
                id: id(3),
                name: "nas".into(),
                connected: false,
                address: None,
                in_bytes_total: 0,
                out_bytes_total: 0,
                paused: false,
            },
            DeviceStatus {
                id: id(4),
                name: "phone".into(),
                connected: false,
                address: None,
                in_bytes_total: 0,
                out_bytes_total: 0,
                paused: true,
            },
        ],
    }
}

pub fn snapshot(taken: Instant) -> Snapshot {
    let status = status();
    let folders = status
        .folders
        .iter()
        .map(|f| FolderConf {
            id: f.id.clone(),
            label: f.label.clone(),
            path: f.path.clone(),
            mode: f.mode.clone(),
            devices: match f.id.as_str() {
                "docs-7f3k2" => vec![id(2), id(3)],
                "music-4hq" => vec![id(2)],
                _ => vec![],
            },
            paused: f.state == "paused",
        })
        .collect();
    let devices = status
        .devices
        .iter()
        .map(|d| DeviceConf {
            id: d.id.clone(),
            name: d.name.clone(),
            addresses: if d.name == "nas" {
                vec!["nas.local:22100".into()]
            } else {
                vec![]
            },
            connected: d.connected,
            paused: d.paused,
        })
        .collect();
    Snapshot {
        status,
        folders,
        devices,
        pending: Pending {
            devices: vec![PendingDevice {
                id: id(5),
                name: "desk".into(),
                address: "192.168.1.31:40122".into(),
                last_seen: "2026-11-20T13:58:02Z".into(),
            }],
            folders: vec![PendingFolder {
                id: "photos-9d2".into(),
                label: "Photos".into(),
                offered_by: vec![id(2)],
            }],
        },
        taken,
    }
}

/// A dashboard attached to a service, with one snapshot, some history and a log.
pub fn app() -> App {
    let mut app = App::new(
        ServiceKind::Attached { pid: Some(4242) },
        id(1),
        Some("/home/ana".into()),
    );
    app.now = datetime!(2026-11-20 14:03:27 UTC);
    let t0 = Instant::now();
    let snap = snapshot(t0);
    app.status = snap.status;
    app.folder_conf = snap.folders;
    app.device_conf = snap.devices;
    app.pending = snap.pending;
    app.loaded = true;
    app.link = LinkState::Up;
    let laptop = app.traffic.entry(id(2)).or_default();
    laptop.in_rate = 1_250_000;
    laptop.out_rate = 31_000;
    laptop.in_history = [0u64, 2, 5, 9, 14, 30, 60, 125, 110, 90, 125, 124, 125]
        .iter()
        .map(|v| v * 10_000)
        .collect();
    laptop.out_history = [1u64, 1, 2, 3, 2, 1, 3, 4, 3, 3, 2, 3, 3]
        .iter()
        .map(|v| v * 10_000)
        .collect();
    app.last_seen
        .insert(id(3), datetime!(2026-11-20 11:42:05 UTC));
    let changes = app.changes.entry("docs-7f3k2".into()).or_default();
    for (t, name, deleted) in [
        (
            datetime!(2026-11-20 14:02:51 UTC),
            "reports/2026-q3.pdf",
            false,
        ),
        (
            datetime!(2026-11-20 14:01:10 UTC),
            "drafts/old-plan.md",
            true,
        ),
        (datetime!(2026-11-20 13:59:44 UTC), "budget.ods", false),
    ] {
        changes.push_back(FileChange {
            time: t,
            name: name.into(),
            device: id(2)[..7].to_string(),
            deleted,
        });
    }
    app.conflicts = Conflicts::Loaded(vec![Conflict {
        folder: "docs-7f3k2".into(),
        name: "budget.sync-conflict-20261120-135944-AIBAEAQ.ods".into(),
        original: "budget.ods".into(),
        device: id(2)[..7].to_string(),
        created: "2026-11-20T13:59:44Z".into(),
    }]);
    let plain = |s: &str| LogText::Plain(s.to_string());
    let lines = [
        (
            Level::Info,
            LogText::Event(Event::DeviceConnected {
                device: id(2),
                address: "192.168.1.20:22100".into(),
            }),
        ),
        (
            Level::Info,
            LogText::Event(Event::PendingDevice {
                device: id(5),
                name: "desk".into(),
                address: "192.168.1.31:40122".into(),
            }),
        ),
        (Level::Error, plain(LONG_ERROR)),
        (
            Level::Info,
            LogText::Event(Event::PendingFolder {
                folder: "photos-9d2".into(),
                label: "Photos".into(),
                device: id(2),
            }),
        ),
        (
            Level::Info,
            LogText::Event(Event::FileChanged {
                folder: "docs-7f3k2".into(),
                name: "reports/2026-q3.pdf".into(),
                device: id(2)[..7].to_string(),
                deleted: false,
            }),
        ),
        (
            Level::Warn,
            LogText::Event(Event::DeviceDisconnected {
                device: id(3),
                reason: "connection reset by peer".into(),
            }),
        ),
    ];
    let start = app.now - time::Duration::minutes(5);
    for (i, (level, text)) in lines.into_iter().enumerate() {
        app.now = start + time::Duration::seconds(37 * i as i64);
        app.push_log(level, text);
    }
    app.now = datetime!(2026-11-20 14:03:27 UTC);
    app
}
