//! The dashboard's state: what the service last told us and what the user is doing.
//!
//! Everything the screens show lives here, outside rendering: `update` changes it, the
//! render functions only read it. Nothing here does I/O; what the service says arrives as
//! values (a [`Snapshot`] from a refresh, an [`Event`](crate::service::api::Event) from
//! the subscription), so every state can be built by hand in a test.

use crate::service::pending::Pending;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;
use time::OffsetDateTime;

/// How many changed files are kept per folder for its "recent changes" list.
pub const RECENT_PER_FOLDER: usize = 20;
/// A line equal to one of the last this many is counted on it instead of added.
pub const REPEAT_WINDOW: usize = 4;
/// How many lines the event log keeps.
pub const LOG_LINES: usize = 500;
/// How many rate samples a device's sparkline keeps (one per second or so).
pub const RATE_SAMPLES: usize = 60;
/// Two status samples closer than this give no rate (refreshes after events come fast;
/// a rate over a few milliseconds would be noise).
pub const MIN_RATE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(700);

/// `status`'s document, as far as the dashboard reads it. Fields it does not know are
/// ignored and missing ones take their defaults, so an older or newer service still shows.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Status {
    pub device_id: String,
    pub name: String,
    pub uptime_secs: u64,
    pub listen_addresses: Vec<String>,
    pub folders: Vec<FolderStatus>,
    pub devices: Vec<DeviceStatus>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct FolderStatus {
    pub id: String,
    pub label: String,
    pub path: String,
    pub mode: String,
    pub state: String,
    pub error: Option<String>,
    pub local_files: u64,
    pub local_bytes: u64,
    pub need_files: u64,
    pub need_bytes: u64,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct DeviceStatus {
    pub id: String,
    pub name: String,
    pub connected: bool,
    pub address: Option<String>,
    pub in_bytes_total: u64,
    pub out_bytes_total: u64,
    pub paused: bool,
}

/// One entry of the `folders` request: whom a folder is shared with.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct FolderConf {
    pub id: String,
    pub label: String,
    pub path: String,
    pub mode: String,
    pub devices: Vec<String>,
    pub paused: bool,
}

/// One entry of the `devices` request: the addresses a device is dialled at.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct DeviceConf {
    pub id: String,
    pub name: String,
    pub addresses: Vec<String>,
    pub connected: bool,
    pub paused: bool,
}

/// One entry of the `conflicts` request: a conflict copy beside its original.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Conflict {
    pub folder: String,
    /// The copy's name.
    pub name: String,
    pub original: String,
    /// Short ID of the device whose version lost.
    pub device: String,
    /// RFC 3339.
    pub created: String,
}

/// The conflict copies, as far as the service told us.
#[derive(Clone, Debug, PartialEq)]
pub enum Conflicts {
    /// Not asked yet (they are read when the Events screen opens).
    Unknown,
    Loaded(Vec<Conflict>),
    /// The service cannot list them (an older service), or the listing failed.
    Unavailable(String),
}

/// Everything one refresh reads from the service.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub status: Status,
    pub folders: Vec<FolderConf>,
    pub devices: Vec<DeviceConf>,
    pub pending: Pending,
    /// When the answer came: rates are byte counts over the time between two snapshots.
    pub taken: Instant,
}

/// The screens, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Screen {
    #[default]
    Overview,
    Folders,
    Devices,
    Pending,
    Events,
}

impl Screen {
    pub const ALL: [Screen; 5] = [
        Screen::Overview,
        Screen::Folders,
        Screen::Devices,
        Screen::Pending,
        Screen::Events,
    ];

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    pub fn from_index(i: usize) -> Self {
        Self::ALL[i % Self::ALL.len()]
    }
}

/// How the dashboard reaches its service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// A service that was already running on this home (its PID).
    Attached { pid: Option<u32> },
    /// Started inside this process; it stops when the dashboard quits.
    Embedded,
}

/// Whether the control connection works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Not heard from the service yet.
    Connecting,
    Up,
    /// The service stopped answering (why); the dashboard keeps trying.
    Down(String),
}

/// A line for the status bar: the outcome of the last action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub error: bool,
    pub text: String,
}

/// How serious a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn parse(s: &str) -> Self {
        match s {
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            _ => Level::Info,
        }
    }
}

/// What a log line says: the event itself is kept, so that it is worded with the names
/// known when it is drawn (an event may arrive before the first status names its device).
#[derive(Clone, Debug, PartialEq)]
pub enum LogText {
    Plain(String),
    Event(crate::service::api::Event),
}

/// One line of the event log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// When it last happened.
    pub time: OffsetDateTime,
    pub level: Level,
    pub text: LogText,
    /// How many times it happened in a row (with at most a few other lines between).
    pub repeats: u32,
}

/// A file a `file_changed` event named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChange {
    pub time: OffsetDateTime,
    pub name: String,
    /// Short ID of the device that made the change.
    pub device: String,
    pub deleted: bool,
}

/// Bytes per second to and from one device, and their recent history.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    /// The totals and time of the sample the next rate is measured from.
    pub last: Option<(u64, u64, Instant)>,
    pub in_rate: u64,
    pub out_rate: u64,
    pub in_history: VecDeque<u64>,
    pub out_history: VecDeque<u64>,
}

impl Traffic {
    /// Takes a new sample of the totals; a counter that went down (the service restarted)
    /// starts over.
    pub fn sample(&mut self, rx: u64, tx: u64, at: Instant) {
        let Some((lrx, ltx, lat)) = self.last else {
            self.last = Some((rx, tx, at));
            return;
        };
        let dt = at.saturating_duration_since(lat);
        if dt < MIN_RATE_INTERVAL {
            return;
        }
        let secs = dt.as_secs_f64();
        self.in_rate = (rx.saturating_sub(lrx) as f64 / secs) as u64;
        self.out_rate = (tx.saturating_sub(ltx) as f64 / secs) as u64;
        for (h, v) in [
            (&mut self.in_history, self.in_rate),
            (&mut self.out_history, self.out_rate),
        ] {
            h.push_back(v);
            while h.len() > RATE_SAMPLES {
                h.pop_front();
            }
        }
        self.last = Some((rx, tx, at));
    }
}

/// A one-line text field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    pub value: String,
}

impl Input {
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
        }
    }

    /// Adds typed or pasted text; line breaks of a paste become nothing (an ID pasted with
    /// its newline is still one ID).
    pub fn insert(&mut self, s: &str) {
        self.value
            .extend(s.chars().filter(|c| *c != '\n' && *c != '\r'));
    }

    pub fn backspace(&mut self) {
        self.value.pop();
    }

    pub fn clear(&mut self) {
        self.value.clear();
    }
}

/// Fields of the add-device dialog, in Tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceField {
    #[default]
    Id,
    Name,
    Address,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddDevice {
    pub focus: DeviceField,
    pub id: Input,
    pub name: Input,
    pub address: Input,
    /// Why the last Enter was refused (besides the ID check shown as you type).
    pub error: Option<String>,
}

/// Fields of the add-folder dialog, in Tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FolderField {
    #[default]
    Path,
    Label,
    Mode,
    Share,
}

/// A trusted device that can be ticked in a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub id: String,
    pub name: String,
    pub ticked: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddFolder {
    pub focus: FolderField,
    pub path: Input,
    pub label: Input,
    /// Index into [`MODES`].
    pub mode: usize,
    pub share: Vec<Choice>,
    /// The highlighted device of the share list.
    pub cursor: usize,
    pub error: Option<String>,
}

/// The folder modes in the order the mode pickers show them.
pub const MODES: [&str; 3] = ["send-receive", "send-only", "receive-only"];

/// A dialog: it takes every key until Enter or Escape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dialog {
    AddDevice(AddDevice),
    AddFolder(AddFolder),
    RenameDevice {
        id: String,
        input: Input,
    },
    /// Share a folder with one of the trusted devices it is not shared with.
    Share {
        folder: String,
        label: String,
        choices: Vec<Choice>,
        cursor: usize,
    },
    Mode {
        folder: String,
        label: String,
        cursor: usize,
    },
    /// A pending folder to add: where on disk.
    AcceptFolder {
        folder: String,
        label: String,
        path: Input,
        error: Option<String>,
    },
    /// A destructive action, asked once more.
    Confirm {
        question: String,
        what: String,
        request: crate::service::api::Request,
    },
}

/// What covers the screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overlay {
    /// Every key binding (scrolled by this many lines).
    Help {
        scroll: u16,
    },
    /// This device's ID as a QR code.
    Qr,
    Dialog(Dialog),
}

/// An entry of the pending screen's one list: devices first, then folders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingItem {
    Device(usize),
    Folder(usize),
}

/// The dashboard's whole state.
pub struct App {
    pub service: ServiceKind,
    /// This device's ID as the home's identity says, before the first status arrives.
    pub local_id: String,
    /// The user's home directory, for the `~/Shoal/<label>` default of an accepted folder.
    pub user_home: Option<PathBuf>,
    pub screen: Screen,
    pub overlay: Option<Overlay>,
    pub status: Status,
    pub folder_conf: Vec<FolderConf>,
    pub device_conf: Vec<DeviceConf>,
    pub pending: Pending,
    /// A first snapshot arrived.
    pub loaded: bool,
    pub link: LinkState,
    pub sel_folder: usize,
    pub sel_device: usize,
    pub sel_pending: usize,
    /// Lines scrolled back from the newest in the event log (0 follows new lines).
    pub log_scroll: usize,
    pub log: VecDeque<LogLine>,
    /// Per folder ID, newest first.
    pub changes: HashMap<String, VecDeque<FileChange>>,
    /// Per folder ID: (bytes hashed, bytes to hash) of the scan under way.
    pub scans: HashMap<String, (u64, u64)>,
    /// Per device ID.
    pub traffic: HashMap<String, Traffic>,
    /// Per device ID: when it was last seen connected (by this dashboard).
    pub last_seen: HashMap<String, OffsetDateTime>,
    pub conflicts: Conflicts,
    pub notice: Option<Notice>,
    /// Actions sent to the service and not answered yet.
    pub in_flight: usize,
    /// Wall-clock time of what is being handled (set by the loop; fixed in tests).
    pub now: OffsetDateTime,
    pub quit: bool,
}

impl App {
    pub fn new(service: ServiceKind, local_id: String, user_home: Option<PathBuf>) -> Self {
        Self {
            service,
            local_id,
            user_home,
            screen: Screen::Overview,
            overlay: None,
            status: Status::default(),
            folder_conf: Vec::new(),
            device_conf: Vec::new(),
            pending: Pending::default(),
            loaded: false,
            link: LinkState::Connecting,
            sel_folder: 0,
            sel_device: 0,
            sel_pending: 0,
            log_scroll: 0,
            log: VecDeque::new(),
            changes: HashMap::new(),
            scans: HashMap::new(),
            traffic: HashMap::new(),
            last_seen: HashMap::new(),
            conflicts: Conflicts::Unknown,
            notice: None,
            in_flight: 0,
            now: OffsetDateTime::UNIX_EPOCH,
            quit: false,
        }
    }

    /// The device ID the status gives, else the identity's.
    pub fn device_id(&self) -> &str {
        if self.status.device_id.is_empty() {
            &self.local_id
        } else {
            &self.status.device_id
        }
    }

    /// The first 7 characters of this device's ID.
    pub fn short_id(&self) -> &str {
        short(self.device_id())
    }

    pub fn selected_folder(&self) -> Option<&FolderStatus> {
        self.status.folders.get(self.sel_folder)
    }

    pub fn selected_device(&self) -> Option<&DeviceStatus> {
        self.status.devices.get(self.sel_device)
    }

    pub fn folder_conf(&self, id: &str) -> Option<&FolderConf> {
        self.folder_conf.iter().find(|f| f.id == id)
    }

    pub fn device_conf(&self, id: &str) -> Option<&DeviceConf> {
        self.device_conf.iter().find(|d| d.id == id)
    }

    /// A device's name from its full or short ID: this device, a trusted one, or the
    /// short ID itself.
    pub fn device_name(&self, id: &str) -> String {
        let s = short(id);
        if !s.is_empty() && self.device_id().starts_with(s) {
            return self.status.name.clone();
        }
        self.status
            .devices
            .iter()
            .find(|d| !s.is_empty() && d.id.starts_with(s))
            .map(|d| d.name.clone())
            .unwrap_or_else(|| s.to_string())
    }

    pub fn folder_label(&self, id: &str) -> String {
        self.status
            .folders
            .iter()
            .find(|f| f.id == id)
            .map(|f| if f.label.is_empty() { &f.id } else { &f.label })
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// The pending screen's list.
    pub fn pending_items(&self) -> Vec<PendingItem> {
        (0..self.pending.devices.len())
            .map(PendingItem::Device)
            .chain((0..self.pending.folders.len()).map(PendingItem::Folder))
            .collect()
    }

    pub fn pending_count(&self) -> usize {
        self.pending.devices.len() + self.pending.folders.len()
    }

    /// Total bytes per second in and out over every device.
    pub fn total_rates(&self) -> (u64, u64) {
        self.traffic.values().fold((0u64, 0u64), |(i, o), t| {
            (i.saturating_add(t.in_rate), o.saturating_add(t.out_rate))
        })
    }

    /// Adds a line to the event log, keeping the scroll position on the same line when
    /// scrolled back.
    pub fn push_log(&mut self, level: Level, text: LogText) {
        // A device dialled in a loop says the same few lines again and again: count them.
        let now = self.now;
        if let Some(l) = self
            .log
            .iter_mut()
            .rev()
            .take(REPEAT_WINDOW)
            .find(|l| l.text == text)
        {
            l.repeats += 1;
            l.time = now;
            return;
        }
        self.log.push_back(LogLine {
            time: self.now,
            level,
            text,
            repeats: 1,
        });
        if self.log_scroll > 0 {
            self.log_scroll += 1;
        }
        while self.log.len() > LOG_LINES {
            self.log.pop_front();
        }
        self.log_scroll = self.log_scroll.min(self.log.len().saturating_sub(1));
    }
}

/// The short form (first 7 characters) of a device ID.
pub fn short(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}
