//! Every word the dashboard shows, in one place: titles, labels, hints, messages, and
//! the small formatters (sizes, rates, durations, times) whose output the user reads.

use super::app::Screen;
use crate::service::api::Event;
use ratatui::crossterm::event::KeyCode;
use time::OffsetDateTime;

pub const APP: &str = "Shoal";
pub const EMBEDDED: &str = "embedded service (stops when you quit)";
pub const EMBEDDED_SHORT: &str = "embedded service";
pub const ATTACHED_SHORT: &str = "attached";
/// The directory an offered folder without a usable label gets under `~/Shoal/`.
pub const DEFAULT_FOLDER_NAME: &str = "folder";
pub const CONNECTING: &str = "connecting…";
pub const LINK_UP: &str = "● live";
pub const LINK_DOWN: &str = "○ service unreachable";
pub const STOPPING_EMBEDDED: &str = "shoal: stopping the embedded service…";
pub const TOO_SMALL: &str = "Terminal too small: make it at least 40×10.";

pub fn attached(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("attached to the service (pid {p})"),
        None => "attached to the service".to_string(),
    }
}

pub fn link_down(why: &str) -> String {
    format!("The service does not answer ({why}); retrying every second.")
}

pub fn screen_title(s: Screen) -> &'static str {
    match s {
        Screen::Overview => "Overview",
        Screen::Folders => "Folders",
        Screen::Devices => "Devices",
        Screen::Pending => "Pending",
        Screen::Events => "Events",
    }
}

/// A tab's title: its number key and name, and a count where one matters.
pub fn tab_title(s: Screen, count: usize) -> String {
    let n = s.index() + 1;
    if s == Screen::Pending && count > 0 {
        format!("{n} {} ({count})", screen_title(s))
    } else {
        format!("{n} {}", screen_title(s))
    }
}

// Overview.
pub const THIS_DEVICE: &str = "This device";
pub const NAME: &str = "Name";
pub const ID: &str = "ID";
pub const LISTEN: &str = "Listen";
pub const UPTIME: &str = "Uptime";
pub const RATES: &str = "Rates";
pub const QR_HINT: &str = "(i: QR code)";
pub const NOT_LISTENING: &str = "not listening";
pub const FOLDERS: &str = "Folders";
pub const DEVICES: &str = "Devices";
pub const NO_FOLDERS: &str = "No folders yet: press n to add one.";
pub const NO_FOLDERS_HERE: &str = "No folders yet: press a to add one.";
pub const NO_DEVICES: &str = "No devices yet: press a to add one by its ID.";
pub const LOADING: &str = "Asking the service…";

pub fn more(n: usize) -> String {
    format!("… and {n} more")
}

// Table headers.
pub const COL_LABEL: &str = "Folder";
pub const COL_STATE: &str = "State";
pub const COL_MODE: &str = "Mode";
pub const COL_FILES: &str = "Files";
pub const COL_SIZE: &str = "Size";
pub const COL_SHARED: &str = "Shared with";
pub const COL_DEVICE: &str = "Device";
pub const COL_ID: &str = "ID";
pub const COL_CONN: &str = "Connection";
pub const COL_ADDRESS: &str = "Address";
pub const COL_IN: &str = "In";
pub const COL_OUT: &str = "Out";
pub const COL_LAST_SEEN: &str = "Last seen";
pub const COL_OFFERED_BY: &str = "Offered by";

// Connection states.
pub const CONNECTED: &str = "connected";
pub const OFFLINE: &str = "offline";
pub const PAUSED: &str = "paused";

pub fn last_seen(t: Option<OffsetDateTime>) -> String {
    match t {
        Some(t) => format!("offline, seen {}", clock(t)),
        None => OFFLINE.to_string(),
    }
}

// Folders screen.
pub const PATH: &str = "Path";
pub const MODE: &str = "Mode";
pub const STATE: &str = "State";
pub const SHARED_WITH: &str = "Shared";
pub const NOT_SHARED: &str = "nobody yet (s: share)";
pub const LOCAL: &str = "Local";
pub const NEEDS: &str = "Needs";
pub const ERROR: &str = "Error";
pub const RECENT: &str = "Recent changes";
pub const NO_RECENT: &str = "No file received since the dashboard opened.";
pub const DELETED: &str = "deleted";

pub fn files_bytes(files: u64, bytes: u64) -> String {
    format!("{files} files, {}", size(bytes))
}

pub fn syncing_gauge(done: u64, total: u64, need_files: u64) -> String {
    format!(
        "{} of {} · {need_files} files to go",
        size(done),
        size(total)
    )
}

pub fn scanning_gauge(done: u64, total: u64) -> String {
    format!("hashing {} of {}", size(done), size(total))
}

pub fn change_line(name: &str, device: &str, deleted: bool) -> String {
    if deleted {
        format!("{name} ({DELETED} by {device})")
    } else {
        format!("{name} (by {device})")
    }
}

/// A folder's state for a table cell, with the progress of a sync or scan.
pub fn state_cell(state: &str, percent: Option<u64>) -> String {
    match percent {
        Some(p) => format!("{state} {p}%"),
        None => state.to_string(),
    }
}

// Devices screen.
pub const ADDRESSES: &str = "Addresses";
pub const DIAL_BY_DISCOVERY: &str = "none: it dials us (or discovery)";
pub const CONNECTION: &str = "Connection";
pub const SHARED_FOLDERS: &str = "Folders";
pub const NO_SHARED: &str = "none";
pub const IN_RATE: &str = "In ";
pub const OUT_RATE: &str = "Out";

pub fn connected_via(addr: Option<&str>) -> String {
    match addr {
        Some(a) => format!("connected via {a}"),
        None => CONNECTED.to_string(),
    }
}

// Pending screen.
pub const PENDING_DEVICES: &str = "Devices that want to connect";
pub const PENDING_FOLDERS: &str = "Folders offered by trusted devices";
pub const NOTHING_PENDING: &str =
    "Nothing is waiting. Devices that knock and folders that trusted devices offer show up here.";
pub const NO_PENDING_DEVICES: &str = "none";
pub const NO_PENDING_FOLDERS: &str = "none";

// Events screen.
pub const CONFLICTS: &str = "Conflicts";
pub const CONFLICTS_NOTE: &str = "This service cannot list conflicts: a conflict leaves a copy named NAME.sync-conflict-DATE-TIME-DEVICE.EXT beside the file, and it shows in the log below as a changed file.";
pub const NO_CONFLICTS: &str = "No conflict copies. When two devices change a file at once, the losing version is kept beside it as NAME.sync-conflict-DATE-TIME-DEVICE.EXT and listed here.";

pub fn conflicts_title(n: Option<usize>) -> String {
    match n {
        Some(n) => format!("{CONFLICTS} ({n})"),
        None => CONFLICTS.to_string(),
    }
}

pub fn conflict_line(original: &str, device: &str) -> String {
    format!("copy of {original}, the version {device} lost")
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM` (UTC), or as given when it does not parse.
pub fn date_time(rfc3339: &str) -> String {
    match OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => rfc3339.to_string(),
    }
}
pub const EVENTS: &str = "Recent events";
pub const NO_EVENTS: &str = "Nothing has happened since the dashboard opened.";

pub fn repeated(line: &str, times: u32) -> String {
    format!("{line} (×{times})")
}

pub fn scrolled_back(n: usize) -> String {
    format!(" {n} lines back · End: follow ")
}

/// One log line for a service event.
pub fn event_line(
    e: &Event,
    folder: &dyn Fn(&str) -> String,
    device: &dyn Fn(&str) -> String,
) -> String {
    match e {
        Event::FolderState {
            folder: f,
            state,
            error,
        } => match error {
            Some(err) => format!("folder {}: {state}: {err}", folder(f)),
            None => format!("folder {}: {state}", folder(f)),
        },
        Event::ScanProgress {
            folder: f,
            bytes_done,
            bytes_total,
            ..
        } => format!(
            "folder {}: hashed {} of {}",
            folder(f),
            size(*bytes_done),
            size(*bytes_total)
        ),
        Event::SyncProgress {
            folder: f,
            need_files,
            need_bytes,
        } => format!(
            "folder {}: {need_files} files ({}) to fetch",
            folder(f),
            size(*need_bytes)
        ),
        Event::DeviceConnected { device: d, address } => {
            format!("device {} connected from {address}", device(d))
        }
        Event::DeviceDisconnected { device: d, reason } => {
            format!("device {} disconnected: {reason}", device(d))
        }
        Event::FileChanged {
            folder: f,
            name,
            device: d,
            deleted,
        } => {
            let what = if *deleted { "deleted" } else { "updated" };
            format!("folder {}: {name} {what} (by {})", folder(f), device(d))
        }
        Event::PendingDevice {
            device: d,
            name,
            address,
        } => {
            let who = if name.is_empty() {
                short_id(d).to_string()
            } else {
                format!("{name} ({})", short_id(d))
            };
            format!("unknown device {who} at {address} wants to connect: see Pending")
        }
        Event::PendingFolder {
            folder: f,
            label,
            device: d,
        } => format!(
            "device {} offers folder {label} ({f}): see Pending",
            device(d)
        ),
        Event::ConfigChanged => "configuration changed".to_string(),
        Event::Log { message, .. } => message.clone(),
    }
}

/// An event worded with the names the dashboard knows now.
pub fn event_text(app: &super::app::App, e: &Event) -> String {
    event_line(e, &|f| app.folder_label(f), &|d| app.device_name(d))
}

/// A log line's words.
pub fn log_text(app: &super::app::App, l: &super::app::LogLine) -> String {
    match &l.text {
        super::app::LogText::Plain(s) => s.clone(),
        super::app::LogText::Event(e) => event_text(app, e),
    }
}

pub fn short_id(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}

// Notices (the status bar).
pub const NO_FOLDER_SELECTED: &str = "No folder selected.";
pub const NO_DEVICE_SELECTED: &str = "No device selected.";
pub const NOTHING_SELECTED: &str = "Nothing selected.";
pub const NOBODY_TO_SHARE_WITH: &str =
    "Every trusted device has this folder already; add a device first (a on Devices).";
pub const REFRESH_FAILED: &str = "cannot read the service's state";

pub fn refresh_failed(why: &str) -> String {
    format!("{REFRESH_FAILED}: {why}")
}

pub fn sent(what: &str) -> String {
    format!("{what}…")
}

pub fn done(what: &str) -> String {
    format!("{what}: done")
}

pub fn failed(what: &str, why: &str) -> String {
    format!("{what} failed: {why}")
}

pub fn working(n: usize) -> String {
    format!("{n} action(s) under way…")
}

// What an action is called in notices.
pub fn act_rescan(label: &str) -> String {
    format!("Rescanning {label}")
}
pub fn act_pause(label: &str, pause: bool) -> String {
    if pause {
        format!("Pausing {label}")
    } else {
        format!("Resuming {label}")
    }
}
pub fn act_share(label: &str, device: &str) -> String {
    format!("Sharing {label} with {device}")
}
pub fn act_mode(label: &str, mode: &str) -> String {
    format!("Setting {label} to {mode}")
}
pub fn act_remove_folder(label: &str) -> String {
    format!("Removing folder {label}")
}
pub fn act_remove_device(name: &str) -> String {
    format!("Removing device {name}")
}
pub fn act_rename(name: &str) -> String {
    format!("Renaming to {name}")
}
pub fn act_add_device(name: &str) -> String {
    format!("Adding device {name}")
}
pub fn act_add_folder(label: &str) -> String {
    format!("Adding folder {label}")
}
pub fn act_accept_device(name: &str) -> String {
    format!("Trusting {name}")
}
pub fn act_accept_folder(label: &str) -> String {
    format!("Adding offered folder {label}")
}
pub fn act_dismiss(name: &str) -> String {
    format!("Dismissing {name}")
}

pub fn confirm_remove_folder(label: &str, path: &str) -> String {
    format!(
        "Stop syncing folder {label}? Its files in {path} stay where they are. (Enter/y: remove, Esc/n: keep)"
    )
}

pub fn confirm_remove_device(name: &str) -> String {
    format!(
        "Stop trusting {name}? It is unshared from every folder and disconnected. (Enter/y: remove, Esc/n: keep)"
    )
}

// Dialogs.
pub const DLG_ADD_DEVICE: &str = " Add a device ";
pub const DLG_ADD_FOLDER: &str = " Add a folder ";
pub const DLG_RENAME: &str = " Rename device ";
pub const DLG_ACCEPT_FOLDER: &str = " Accept offered folder ";
pub const DLG_CONFIRM: &str = " Are you sure? ";
pub const DLG_HELP: &str = " Keys ";
pub const DLG_QR: &str = " This device's ID ";
pub const FIELD_DEVICE_ID: &str = "Device ID (paste it; `shoal id` on the other device prints it)";
pub const FIELD_NAME: &str = "Name (optional)";
pub const FIELD_ADDRESS: &str = "Address HOST:PORT (optional; without it the device must dial us)";
pub const FIELD_PATH: &str = "Path (created where missing)";
pub const FIELD_LABEL: &str = "Label (optional: the directory's name)";
pub const FIELD_MODE: &str = "Mode (Space: change)";
pub const FIELD_SHARE: &str = "Share with (↑↓ move, Space: tick)";
pub const FIELD_NEW_NAME: &str = "New name";
pub const FIELD_ACCEPT_PATH: &str = "Where to keep it (created where missing)";
pub const ID_EMPTY: &str = "Waiting for an ID: 8 groups of 7 letters and digits.";
pub const NO_TRUSTED_DEVICES: &str = "no trusted device yet (add one first)";
pub const PATH_REQUIRED: &str = "A path is needed.";
pub const DIALOG_KEYS: &str = "Enter: confirm · Tab: next field · Esc: cancel";
pub const FIELD_KEYS: &str = "Enter: confirm · Esc: cancel";
pub const LIST_KEYS: &str = "↑↓: choose · Enter: confirm · Esc: cancel";
pub const SHARE_PROMPT: &str = "With which device?";
pub const QR_TOO_SMALL: &str = "Make the terminal larger to show the QR code.";
pub const QR_FAILED: &str = "This ID cannot be drawn as a QR code.";
pub const HELP_FOOTER: &str = "↑↓: scroll · Esc: close";

pub fn id_ok(short: &str) -> String {
    format!("✓ a valid device ID ({short})")
}

pub fn id_bad(why: &str) -> String {
    format!("✗ {why}")
}

pub fn accept_folder_intro(label: &str, id: &str, by: &str) -> String {
    format!("{by} offers folder {label} ({id}).")
}

pub fn share_title(label: &str) -> String {
    format!(" Share {label} ")
}

pub fn mode_title(label: &str) -> String {
    format!(" Mode of {label} ")
}

pub fn mode_help(mode: &str) -> &'static str {
    match mode {
        "send-only" => "sends its changes; applies nobody else's",
        "receive-only" => "applies others' changes; announces none of its own",
        _ => "sends and receives changes",
    }
}

pub fn scope_title(s: super::keys::Scope) -> &'static str {
    use super::keys::Scope;
    match s {
        Scope::Global => "Everywhere",
        Scope::Screen(Screen::Overview) => "Overview",
        Scope::Screen(Screen::Folders) => "Folders",
        Scope::Screen(Screen::Devices) => "Devices",
        Scope::Screen(Screen::Pending) => "Pending",
        Scope::Screen(Screen::Events) => "Events",
        Scope::Dialog => "In a dialog",
        Scope::Overlay => "Help and QR code",
    }
}

pub fn key_name(code: KeyCode, ctrl: bool) -> String {
    let base = match code {
        KeyCode::Char(' ') => "Space".to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::BackTab => "Shift-Tab".into(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::Delete => "Del".into(),
        KeyCode::Backspace => "Backspace".into(),
        other => format!("{other:?}"),
    };
    if ctrl { format!("Ctrl-{base}") } else { base }
}

/// What each binding does, for `?`, and its word in the footer.
pub mod keys {
    pub const QUIT: &str = "quit (an embedded service stops too)";
    pub const HELP: &str = "show every key";
    pub const NEXT: &str = "next screen";
    pub const PREV: &str = "previous screen";
    pub const GOTO_OVERVIEW: &str = "Overview";
    pub const GOTO_FOLDERS: &str = "Folders";
    pub const GOTO_DEVICES: &str = "Devices";
    pub const GOTO_PENDING: &str = "Pending";
    pub const GOTO_EVENTS: &str = "Events";
    pub const UP: &str = "select the previous entry";
    pub const DOWN: &str = "select the next entry";
    pub const PAGE_UP: &str = "up a page";
    pub const PAGE_DOWN: &str = "down a page";
    pub const TOP: &str = "first entry";
    pub const BOTTOM: &str = "last entry";
    pub const SHOW_QR: &str = "show this device's ID as a QR code";
    pub const ADD_DEVICE: &str = "add a device by its ID";
    pub const ADD_FOLDER: &str = "add a folder";
    pub const RESCAN: &str = "rescan the folder now";
    pub const PAUSE_FOLDER: &str = "pause or resume the folder";
    pub const SHARE: &str = "share the folder with a device";
    pub const MODE: &str = "change the folder's mode";
    pub const REMOVE_FOLDER: &str = "remove the folder (its files stay)";
    pub const RENAME: &str = "rename the device";
    pub const PAUSE_DEVICE: &str = "pause or resume the device";
    pub const REMOVE_DEVICE: &str = "remove the device";
    pub const ACCEPT: &str = "accept (a folder asks where to keep it)";
    pub const DISMISS: &str = "dismiss";
    pub const SCROLL_UP: &str = "scroll back";
    pub const SCROLL_DOWN: &str = "scroll forward";
    pub const FOLLOW: &str = "follow the newest lines";
    pub const CANCEL: &str = "cancel";
    pub const CONFIRM: &str = "confirm";
    pub const NEXT_FIELD: &str = "next field";
    pub const PREV_FIELD: &str = "previous field";
    pub const LIST_UP: &str = "move up a list";
    pub const LIST_DOWN: &str = "move down a list";
    pub const TOGGLE: &str = "tick a device, change the mode (a space in text fields)";
    pub const BACKSPACE: &str = "delete a character";
    pub const CLEAR: &str = "clear the field";
    pub const CLOSE: &str = "close";

    pub const HINT_QUIT: &str = "quit";
    pub const HINT_HELP: &str = "keys";
    pub const HINT_NEXT: &str = "screens";
    pub const HINT_QR: &str = "QR";
    pub const HINT_ADD_DEVICE: &str = "add device";
    pub const HINT_ADD_FOLDER: &str = "add folder";
    pub const HINT_ADD: &str = "add";
    pub const HINT_RESCAN: &str = "rescan";
    pub const HINT_PAUSE: &str = "pause";
    pub const HINT_SHARE: &str = "share";
    pub const HINT_MODE: &str = "mode";
    pub const HINT_REMOVE: &str = "remove";
    pub const HINT_RENAME: &str = "rename";
    pub const HINT_ACCEPT: &str = "accept";
    pub const HINT_DISMISS: &str = "dismiss";
    pub const HINT_SCROLL: &str = "scroll";
    pub const HINT_CANCEL: &str = "cancel";
    pub const HINT_CONFIRM: &str = "confirm";
    pub const HINT_FIELD: &str = "next field";
    pub const HINT_CLOSE: &str = "close";
}

// Formatters.

/// Bytes in decimal units (what file managers show).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

pub fn rate(bytes_per_sec: u64) -> String {
    format!("{}/s", size(bytes_per_sec))
}

pub fn rates(rx: u64, tx: u64) -> String {
    format!("↓ {}  ↑ {}", rate(rx), rate(tx))
}

pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m:02}m")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A time of day (UTC: the dashboard does not guess the local zone).
pub fn clock(t: OffsetDateTime) -> String {
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1500), "1.5 kB");
        assert_eq!(size(12_345_678), "12 MB");
        assert_eq!(uptime(59), "59s");
        assert_eq!(uptime(3_725), "1h 02m");
        assert_eq!(uptime(90_061), "1d 1h 01m");
        assert_eq!(key_name(KeyCode::Char('c'), true), "Ctrl-c");
    }
}
