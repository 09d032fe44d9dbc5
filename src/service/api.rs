//! The control API's vocabulary: requests, answers and events, as JSON.
//!
//! One request per line, one answer per line (`{"ok": true, "result": …}` or
//! `{"ok": false, "error": "…"}`). After `subscribe`, the connection carries one event per
//! line until either side closes it. The CLI and the dashboard use nothing else to reach a
//! running service, so this file is the whole contract between them and the engine.

use crate::config::ConfigChange;
use serde::{Deserialize, Serialize};

/// What a client may ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Request {
    /// `shoal status --json`'s document.
    Status,
    /// `shoal device ls --json`'s array.
    Devices,
    /// `shoal pending --json`'s document.
    Pending,
    /// `shoal folder ls --json`'s array as the running service holds the config (with
    /// `paused`): whom each folder is shared with, which `status` does not say.
    Folders,
    /// A config change; answered once it is saved and applied.
    Change {
        change: ConfigChange,
    },
    /// Trust a pending device.
    AcceptDevice {
        id: String,
        name: Option<String>,
    },
    /// Add a folder a trusted device offered, shared with every device that offered it.
    AcceptFolder {
        folder: String,
        path: String,
    },
    DismissDevice {
        id: String,
    },
    DismissFolder {
        folder: String,
    },
    /// `shoal conflicts --json`'s array: the conflict copies the local index holds (every
    /// folder without an ID), newest first.
    Conflicts {
        folder: Option<String>,
    },
    /// Scan now (every folder without an ID); answered when the scans are done.
    Rescan {
        folder: Option<String>,
    },
    /// Throw away a receive-only folder's local changes (`shoal folder revert`); answered
    /// with `folder revert --json`'s document once the pulls are queued.
    Revert {
        folder: String,
    },
    /// Turn this connection into an event stream.
    Subscribe,
}

/// One answer line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Answer {
    pub fn ok(result: serde_json::Value) -> Self {
        Self {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn err(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            result: None,
            error: Some(message.into()),
        }
    }
}

/// What the service tells subscribers, as it happens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    FolderState {
        folder: String,
        state: String,
        error: Option<String>,
    },
    ScanProgress {
        folder: String,
        files: u64,
        bytes_done: u64,
        bytes_total: u64,
    },
    SyncProgress {
        folder: String,
        need_files: u64,
        need_bytes: u64,
    },
    DeviceConnected {
        device: String,
        address: String,
    },
    DeviceDisconnected {
        device: String,
        reason: String,
    },
    FileChanged {
        folder: String,
        name: String,
        /// The short ID of the device that made the change.
        device: String,
        deleted: bool,
    },
    PendingDevice {
        device: String,
        name: String,
        address: String,
    },
    PendingFolder {
        folder: String,
        label: String,
        device: String,
    },
    ConfigChanged,
    /// A line of what the service did, for the dashboard's log.
    Log {
        level: String,
        message: String,
    },
}
