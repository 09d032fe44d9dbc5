//! `update`: the one place the dashboard's state changes.
//!
//! Keys, pastes, service events, refresh results and answers to actions all arrive as an
//! [`Action`]; `update` changes the [`App`] and returns the [`Effect`]s the loop must carry
//! out (ask the service something). It does no I/O itself, so every transition is tested
//! with plain values.

use super::app::{
    AddDevice, AddFolder, App, Choice, Conflict, Conflicts, DeviceField, Dialog, FileChange,
    FolderField, Input, Level, LinkState, LogText, MODES, Notice, Overlay, PendingItem,
    RECENT_PER_FOLDER, Screen, Snapshot, short,
};
use super::keys::{self, Command, Scope};
use super::text;
use crate::config::{ConfigChange, FolderMode};
use crate::identity::DeviceId;
use crate::service::api::{Event, Request};
use crate::service::pending::{PendingDevice, PendingFolder};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::path::{Path, PathBuf};

/// Something that happened, for `update` to act on.
#[derive(Debug)]
pub enum Action {
    Key(KeyEvent),
    /// Text pasted in one go (bracketed paste).
    Paste(String),
    /// The terminal changed size: only a redraw.
    Resize,
    /// A second passed: time to sample the rates.
    Tick,
    /// An event from the service's subscription.
    Event(Event),
    Snapshot(Box<Snapshot>),
    RefreshFailed(String),
    /// The service answered an action.
    Done {
        what: String,
        result: Result<(), String>,
    },
    /// The answer to [`Effect::LoadConflicts`].
    Conflicts(Result<Vec<Conflict>, String>),
    /// The event subscription is (again) established.
    LinkUp,
    /// The event subscription broke (why).
    LinkDown(String),
    /// The terminal's input ended: nothing can be typed any more.
    InputClosed,
}

/// What the loop must do for `update`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Re-read status, folders, devices and pending (coalesced and rate-limited).
    Refresh,
    /// Read the conflict copies; they come back as [`Action::Conflicts`].
    LoadConflicts,
    /// Send one request; its answer comes back as [`Action::Done`] naming `what`.
    Call { what: String, request: Request },
}

/// What names a conflict copy (`NAME.sync-conflict-DATE-TIME-DEVICE.EXT`).
const CONFLICT_MARK: &str = ".sync-conflict-";

/// Lines a page key moves.
const PAGE: usize = 10;

pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    match action {
        Action::Key(key) => on_key(app, &key),
        Action::Paste(s) => {
            if let Some(Overlay::Dialog(d)) = &mut app.overlay {
                clear_error(d);
                if let Some(input) = focused_input(d) {
                    input.insert(s.trim());
                }
            }
            Vec::new()
        }
        Action::Resize => Vec::new(),
        Action::Tick => vec![Effect::Refresh],
        Action::Event(e) => on_event(app, e),
        Action::Snapshot(s) => {
            apply_snapshot(app, *s);
            Vec::new()
        }
        Action::RefreshFailed(why) => {
            if app.link != LinkState::Down(why.clone()) {
                app.push_log(Level::Warn, LogText::Plain(text::refresh_failed(&why)));
            }
            app.link = LinkState::Down(why);
            Vec::new()
        }
        Action::Done { what, result } => {
            app.in_flight = app.in_flight.saturating_sub(1);
            app.notice = Some(match &result {
                Ok(()) => Notice {
                    error: false,
                    text: text::done(&what),
                },
                Err(e) => Notice {
                    error: true,
                    text: text::failed(&what, e),
                },
            });
            if let Err(e) = result {
                app.push_log(Level::Error, LogText::Plain(text::failed(&what, &e)));
            }
            vec![Effect::Refresh]
        }
        Action::Conflicts(result) => {
            app.conflicts = match result {
                Ok(list) => Conflicts::Loaded(list),
                Err(e) => Conflicts::Unavailable(e),
            };
            Vec::new()
        }
        Action::LinkUp => {
            app.link = LinkState::Up;
            vec![Effect::Refresh]
        }
        Action::LinkDown(why) => {
            if app.link != LinkState::Down(why.clone()) {
                app.push_log(Level::Warn, LogText::Plain(text::link_down(&why)));
            }
            app.link = LinkState::Down(why);
            Vec::new()
        }
        Action::InputClosed => {
            app.quit = true;
            Vec::new()
        }
    }
}

fn on_key(app: &mut App, key: &KeyEvent) -> Vec<Effect> {
    match &mut app.overlay {
        Some(Overlay::Dialog(_)) => return dialog_key(app, key),
        Some(Overlay::Help { scroll }) => {
            match keys::lookup(Scope::Overlay, key) {
                Some(Command::Close) => app.overlay = None,
                Some(Command::Up) => *scroll = scroll.saturating_sub(1),
                Some(Command::Down) => *scroll = scroll.saturating_add(1),
                _ => {}
            }
            return Vec::new();
        }
        Some(Overlay::Qr) => {
            if keys::lookup(Scope::Overlay, key) == Some(Command::Close) {
                app.overlay = None;
            }
            return Vec::new();
        }
        None => {}
    }
    let before = app.screen;
    let mut effects = match keys::lookup(Scope::Screen(app.screen), key) {
        Some(cmd) => command(app, cmd),
        None => Vec::new(),
    };
    // The conflict list walks the whole index: read it when it is looked at.
    if app.screen == Screen::Events && before != Screen::Events {
        effects.push(Effect::LoadConflicts);
    }
    effects
}

/// Sends a request, saying so in the status bar.
fn call(app: &mut App, what: String, request: Request) -> Vec<Effect> {
    app.in_flight += 1;
    app.notice = Some(Notice {
        error: false,
        text: text::sent(&what),
    });
    vec![Effect::Call { what, request }]
}

fn notice(app: &mut App, text: &str) -> Vec<Effect> {
    app.notice = Some(Notice {
        error: true,
        text: text.to_string(),
    });
    Vec::new()
}

fn change(change: ConfigChange) -> Request {
    Request::Change { change }
}

fn command(app: &mut App, cmd: Command) -> Vec<Effect> {
    match cmd {
        Command::Quit => {
            app.quit = true;
            Vec::new()
        }
        Command::Help => {
            app.overlay = Some(Overlay::Help { scroll: 0 });
            Vec::new()
        }
        Command::NextScreen => {
            app.screen = Screen::from_index(app.screen.index() + 1);
            Vec::new()
        }
        Command::PrevScreen => {
            app.screen = Screen::from_index(app.screen.index() + Screen::ALL.len() - 1);
            Vec::new()
        }
        Command::Goto(s) => {
            app.screen = s;
            Vec::new()
        }
        Command::Up => move_by(app, -1),
        Command::Down => move_by(app, 1),
        Command::PageUp => move_by(app, -(PAGE as isize)),
        Command::PageDown => move_by(app, PAGE as isize),
        Command::Top => move_by(app, isize::MIN / 2),
        Command::Bottom => move_by(app, isize::MAX / 2),
        Command::ShowQr => {
            app.overlay = Some(Overlay::Qr);
            Vec::new()
        }
        Command::AddDevice => {
            app.overlay = Some(Overlay::Dialog(Dialog::AddDevice(AddDevice::default())));
            Vec::new()
        }
        Command::AddFolder => {
            let share = app
                .status
                .devices
                .iter()
                .map(|d| Choice {
                    id: d.id.clone(),
                    name: d.name.clone(),
                    ticked: false,
                })
                .collect();
            app.overlay = Some(Overlay::Dialog(Dialog::AddFolder(AddFolder {
                share,
                ..AddFolder::default()
            })));
            Vec::new()
        }
        Command::Rescan => {
            let Some(f) = app.selected_folder() else {
                return notice(app, text::NO_FOLDER_SELECTED);
            };
            let (id, label) = (f.id.clone(), app.folder_label(&f.id));
            call(
                app,
                text::act_rescan(&label),
                Request::Rescan { folder: Some(id) },
            )
        }
        Command::TogglePause => toggle_pause(app),
        Command::Share => {
            let Some(f) = app.selected_folder() else {
                return notice(app, text::NO_FOLDER_SELECTED);
            };
            let id = f.id.clone();
            let shared = app
                .folder_conf(&id)
                .map(|c| c.devices.clone())
                .unwrap_or_default();
            let choices: Vec<Choice> = app
                .status
                .devices
                .iter()
                .filter(|d| !shared.contains(&d.id))
                .map(|d| Choice {
                    id: d.id.clone(),
                    name: d.name.clone(),
                    ticked: false,
                })
                .collect();
            if choices.is_empty() {
                return notice(app, text::NOBODY_TO_SHARE_WITH);
            }
            app.overlay = Some(Overlay::Dialog(Dialog::Share {
                label: app.folder_label(&id),
                folder: id,
                choices,
                cursor: 0,
            }));
            Vec::new()
        }
        Command::Mode => {
            let Some(f) = app.selected_folder() else {
                return notice(app, text::NO_FOLDER_SELECTED);
            };
            let cursor = MODES.iter().position(|m| *m == f.mode).unwrap_or(0);
            app.overlay = Some(Overlay::Dialog(Dialog::Mode {
                folder: f.id.clone(),
                label: app.folder_label(&f.id),
                cursor,
            }));
            Vec::new()
        }
        Command::Remove => remove(app),
        Command::Rename => {
            let Some(d) = app.selected_device() else {
                return notice(app, text::NO_DEVICE_SELECTED);
            };
            app.overlay = Some(Overlay::Dialog(Dialog::RenameDevice {
                id: d.id.clone(),
                input: Input::new(d.name.clone()),
            }));
            Vec::new()
        }
        Command::Accept => accept(app),
        Command::Dismiss => {
            let items = app.pending_items();
            match items.get(app.sel_pending) {
                Some(PendingItem::Device(i)) => {
                    let d = &app.pending.devices[*i];
                    let (what, id) = (text::act_dismiss(&d.name), d.id.clone());
                    call(app, what, Request::DismissDevice { id })
                }
                Some(PendingItem::Folder(i)) => {
                    let f = &app.pending.folders[*i];
                    let (what, folder) = (text::act_dismiss(&f.label), f.id.clone());
                    call(app, what, Request::DismissFolder { folder })
                }
                None => notice(app, text::NOTHING_SELECTED),
            }
        }
        // Dialog-only commands mean nothing on a screen.
        Command::Close
        | Command::Confirm
        | Command::NextField
        | Command::PrevField
        | Command::Toggle
        | Command::ClearField
        | Command::Backspace => Vec::new(),
    }
}

/// Moves the current screen's selection (or the log's scroll) by `delta`, clamped.
fn move_by(app: &mut App, delta: isize) -> Vec<Effect> {
    fn clamp(v: usize, delta: isize, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        (v as isize)
            .saturating_add(delta)
            .clamp(0, len as isize - 1) as usize
    }
    match app.screen {
        Screen::Overview => {}
        Screen::Folders => {
            app.sel_folder = clamp(app.sel_folder, delta, app.status.folders.len());
        }
        Screen::Devices => {
            app.sel_device = clamp(app.sel_device, delta, app.status.devices.len());
        }
        Screen::Pending => {
            app.sel_pending = clamp(app.sel_pending, delta, app.pending_items().len());
        }
        Screen::Events => {
            // Up goes back in time: the scroll counts lines back from the newest.
            app.log_scroll = clamp(app.log_scroll, -delta, app.log.len());
        }
    }
    Vec::new()
}

fn toggle_pause(app: &mut App) -> Vec<Effect> {
    match app.screen {
        Screen::Folders => {
            let Some(f) = app.selected_folder() else {
                return notice(app, text::NO_FOLDER_SELECTED);
            };
            let id = f.id.clone();
            let paused = app
                .folder_conf(&id)
                .map(|c| c.paused)
                .unwrap_or(f.state == "paused");
            let what = text::act_pause(&app.folder_label(&id), !paused);
            call(
                app,
                what,
                change(ConfigChange::PauseFolder {
                    folder: id,
                    paused: !paused,
                }),
            )
        }
        Screen::Devices => {
            let Some(d) = app.selected_device() else {
                return notice(app, text::NO_DEVICE_SELECTED);
            };
            let (paused, name) = (d.paused, d.name.clone());
            match d.id.parse::<DeviceId>() {
                Ok(id) => call(
                    app,
                    text::act_pause(&name, !paused),
                    change(ConfigChange::PauseDevice {
                        id,
                        paused: !paused,
                    }),
                ),
                Err(e) => notice(app, &e.to_string()),
            }
        }
        _ => Vec::new(),
    }
}

fn remove(app: &mut App) -> Vec<Effect> {
    let dialog = match app.screen {
        Screen::Folders => {
            let Some(f) = app.selected_folder() else {
                return notice(app, text::NO_FOLDER_SELECTED);
            };
            let label = app.folder_label(&f.id);
            Dialog::Confirm {
                question: text::confirm_remove_folder(&label, &f.path),
                what: text::act_remove_folder(&label),
                request: change(ConfigChange::RemoveFolder {
                    folder: f.id.clone(),
                }),
            }
        }
        Screen::Devices => {
            let Some(d) = app.selected_device() else {
                return notice(app, text::NO_DEVICE_SELECTED);
            };
            let id = match d.id.parse::<DeviceId>() {
                Ok(id) => id,
                Err(e) => return notice(app, &e.to_string()),
            };
            Dialog::Confirm {
                question: text::confirm_remove_device(&d.name),
                what: text::act_remove_device(&d.name),
                request: change(ConfigChange::RemoveDevice { id }),
            }
        }
        _ => return Vec::new(),
    };
    app.overlay = Some(Overlay::Dialog(dialog));
    Vec::new()
}

fn accept(app: &mut App) -> Vec<Effect> {
    let items = app.pending_items();
    match items.get(app.sel_pending) {
        Some(PendingItem::Device(i)) => {
            let d = &app.pending.devices[*i];
            let name = if d.name.is_empty() {
                short(&d.id).to_string()
            } else {
                d.name.clone()
            };
            let id = d.id.clone();
            call(
                app,
                text::act_accept_device(&name),
                Request::AcceptDevice { id, name: None },
            )
        }
        Some(PendingItem::Folder(i)) => {
            let f = &app.pending.folders[*i];
            let label = if f.label.is_empty() {
                f.id.clone()
            } else {
                f.label.clone()
            };
            let dialog = Dialog::AcceptFolder {
                folder: f.id.clone(),
                path: Input::new(default_folder_path(&label)),
                label,
                error: None,
            };
            app.overlay = Some(Overlay::Dialog(dialog));
            Vec::new()
        }
        None => notice(app, text::NOTHING_SELECTED),
    }
}

/// Where an offered folder goes unless the user says otherwise: `~/Shoal/<label>`.
pub fn default_folder_path(label: &str) -> String {
    let safe: String = label
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    let safe = if safe.is_empty() || safe == "." || safe == ".." {
        text::DEFAULT_FOLDER_NAME.to_string()
    } else {
        safe
    };
    format!("~/Shoal/{safe}")
}

/// `~` and `~/…` become the user's home directory.
pub fn expand_tilde(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(h)) => h.to_path_buf(),
        (Some(rest), Some(h)) if rest.starts_with('/') => h.join(rest.trim_start_matches('/')),
        _ => PathBuf::from(path),
    }
}

// Dialogs.

fn focused_input(d: &mut Dialog) -> Option<&mut Input> {
    match d {
        Dialog::AddDevice(a) => Some(match a.focus {
            DeviceField::Id => &mut a.id,
            DeviceField::Name => &mut a.name,
            DeviceField::Address => &mut a.address,
        }),
        Dialog::AddFolder(f) => match f.focus {
            FolderField::Path => Some(&mut f.path),
            FolderField::Label => Some(&mut f.label),
            FolderField::Mode | FolderField::Share => None,
        },
        Dialog::RenameDevice { input, .. } => Some(input),
        Dialog::AcceptFolder { path, .. } => Some(path),
        Dialog::Share { .. } | Dialog::Mode { .. } | Dialog::Confirm { .. } => None,
    }
}

fn clear_error(d: &mut Dialog) {
    match d {
        Dialog::AddDevice(a) => a.error = None,
        Dialog::AddFolder(f) => f.error = None,
        Dialog::AcceptFolder { error, .. } => *error = None,
        _ => {}
    }
}

fn dialog_key(app: &mut App, key: &KeyEvent) -> Vec<Effect> {
    let cmd = keys::lookup(Scope::Dialog, key);
    if cmd == Some(Command::Confirm) {
        return confirm(app);
    }
    let Some(Overlay::Dialog(d)) = &mut app.overlay else {
        return Vec::new();
    };
    match cmd {
        Some(Command::Close) => app.overlay = None,
        Some(Command::NextField) => next_field(d, true),
        Some(Command::PrevField) => next_field(d, false),
        Some(Command::Up) => list_move(d, -1),
        Some(Command::Down) => list_move(d, 1),
        Some(Command::Toggle) => {
            if !toggle(d)
                && let Some(i) = focused_input(d)
            {
                i.insert(" ");
            }
        }
        Some(Command::Backspace) => {
            clear_error(d);
            if let Some(i) = focused_input(d) {
                i.backspace();
            }
        }
        Some(Command::ClearField) => {
            clear_error(d);
            if let Some(i) = focused_input(d) {
                i.clear();
            }
        }
        _ => {
            let KeyCode::Char(c) = key.code else {
                return Vec::new();
            };
            if key.modifiers.contains(KeyModifiers::CONTROL) {
                return Vec::new();
            }
            if matches!(d, Dialog::Confirm { .. }) {
                match c {
                    'y' | 'Y' => return confirm(app),
                    'n' | 'N' => app.overlay = None,
                    _ => {}
                }
                return Vec::new();
            }
            clear_error(d);
            if let Some(i) = focused_input(d) {
                i.insert(&c.to_string());
            }
        }
    }
    Vec::new()
}

fn next_field(d: &mut Dialog, forward: bool) {
    match d {
        Dialog::AddDevice(a) => {
            const ORDER: [DeviceField; 3] =
                [DeviceField::Id, DeviceField::Name, DeviceField::Address];
            a.focus = cycle(&ORDER, a.focus, forward);
        }
        Dialog::AddFolder(f) => {
            const ORDER: [FolderField; 4] = [
                FolderField::Path,
                FolderField::Label,
                FolderField::Mode,
                FolderField::Share,
            ];
            f.focus = cycle(&ORDER, f.focus, forward);
        }
        _ => {}
    }
}

fn cycle<T: Copy + PartialEq>(order: &[T], now: T, forward: bool) -> T {
    let i = order.iter().position(|x| *x == now).unwrap_or(0);
    let n = order.len();
    order[if forward {
        (i + 1) % n
    } else {
        (i + n - 1) % n
    }]
}

fn list_move(d: &mut Dialog, delta: isize) {
    let step = |cursor: &mut usize, len: usize| {
        if len > 0 {
            *cursor = (*cursor as isize + delta).clamp(0, len as isize - 1) as usize;
        }
    };
    match d {
        Dialog::Share {
            choices, cursor, ..
        } => step(cursor, choices.len()),
        Dialog::Mode { cursor, .. } => step(cursor, MODES.len()),
        Dialog::AddFolder(f) => match f.focus {
            FolderField::Share => step(&mut f.cursor, f.share.len()),
            FolderField::Mode => f.mode = (f.mode as isize + delta).rem_euclid(3) as usize,
            _ => {}
        },
        _ => {}
    }
}

/// Space on a list: ticks a device or changes the mode. False when the focus is a text
/// field (the space is then typed).
fn toggle(d: &mut Dialog) -> bool {
    match d {
        Dialog::AddFolder(f) => match f.focus {
            FolderField::Share => {
                if let Some(c) = f.share.get_mut(f.cursor) {
                    c.ticked = !c.ticked;
                }
                true
            }
            FolderField::Mode => {
                f.mode = (f.mode + 1) % MODES.len();
                true
            }
            _ => false,
        },
        Dialog::Share { .. } | Dialog::Mode { .. } | Dialog::Confirm { .. } => true,
        _ => false,
    }
}

/// Enter in a dialog: checks what was typed; either sends the request and closes, or
/// keeps the dialog open with the reason.
fn confirm(app: &mut App) -> Vec<Effect> {
    let Some(Overlay::Dialog(mut d)) = app.overlay.take() else {
        return Vec::new();
    };
    match checked(app, &mut d) {
        Some((what, request)) => call(app, what, request),
        None => {
            app.overlay = Some(Overlay::Dialog(d));
            Vec::new()
        }
    }
}

/// The request a dialog asks for, or `None` with the dialog's error set.
fn checked(app: &App, d: &mut Dialog) -> Option<(String, Request)> {
    match d {
        Dialog::AddDevice(a) => {
            let id = match a.id.value.parse::<DeviceId>() {
                Ok(id) => id,
                Err(e) => {
                    a.error = Some(text::id_bad(&e.to_string()));
                    return None;
                }
            };
            let name = Some(a.name.value.trim().to_string()).filter(|n| !n.is_empty());
            let addr = a.address.value.trim();
            let addresses = if addr.is_empty() {
                Vec::new()
            } else if let Err(e) = crate::config::validate_dial_addr(addr) {
                a.error = Some(e.to_string());
                return None;
            } else {
                vec![addr.to_string()]
            };
            let what = text::act_add_device(name.as_deref().unwrap_or(&id.short_str()));
            Some((
                what,
                change(ConfigChange::AddDevice {
                    id,
                    name,
                    addresses,
                }),
            ))
        }
        Dialog::AddFolder(f) => {
            let raw = f.path.value.trim();
            if raw.is_empty() {
                f.error = Some(text::PATH_REQUIRED.to_string());
                return None;
            }
            let expanded = expand_tilde(raw, app.user_home.as_deref());
            let path = match crate::config::change::normalize_folder_path(&expanded) {
                Ok(p) => p,
                Err(e) => {
                    f.error = Some(e.to_string());
                    return None;
                }
            };
            let id = crate::config::random_folder_id();
            let label = Some(f.label.value.trim().to_string())
                .filter(|l| !l.is_empty())
                .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| id.clone());
            let mode = MODES[f.mode % MODES.len()]
                .parse::<FolderMode>()
                .unwrap_or_default();
            let devices = f
                .share
                .iter()
                .filter(|c| c.ticked)
                .filter_map(|c| c.id.parse::<DeviceId>().ok())
                .collect();
            Some((
                text::act_add_folder(&label),
                change(ConfigChange::AddFolder {
                    id,
                    label,
                    path,
                    mode,
                    devices,
                }),
            ))
        }
        Dialog::RenameDevice { id, input } => {
            let name = input.value.trim().to_string();
            let parsed = id.parse::<DeviceId>().ok()?;
            if name.is_empty() {
                return None;
            }
            Some((
                text::act_rename(&name),
                change(ConfigChange::SetDevice {
                    id: parsed,
                    name: Some(name),
                    addresses: None,
                }),
            ))
        }
        Dialog::Share {
            folder,
            label,
            choices,
            cursor,
        } => {
            let c = choices.get(*cursor)?;
            let device = c.id.parse::<DeviceId>().ok()?;
            Some((
                text::act_share(label, &c.name),
                change(ConfigChange::ShareFolder {
                    folder: folder.clone(),
                    device,
                }),
            ))
        }
        Dialog::Mode {
            folder,
            label,
            cursor,
        } => {
            let name = MODES.get(*cursor)?;
            let mode = name.parse::<FolderMode>().ok()?;
            Some((
                text::act_mode(label, name),
                change(ConfigChange::SetFolderMode {
                    folder: folder.clone(),
                    mode,
                }),
            ))
        }
        Dialog::AcceptFolder {
            folder,
            label,
            path,
            error,
        } => {
            let raw = path.value.trim();
            if raw.is_empty() {
                *error = Some(text::PATH_REQUIRED.to_string());
                return None;
            }
            let path = expand_tilde(raw, app.user_home.as_deref());
            Some((
                text::act_accept_folder(label),
                Request::AcceptFolder {
                    folder: folder.clone(),
                    path: path.to_string_lossy().into_owned(),
                },
            ))
        }
        Dialog::Confirm { what, request, .. } => Some((what.clone(), request.clone())),
    }
}

// What the service says.

fn on_event(app: &mut App, e: Event) -> Vec<Effect> {
    let mut level = Level::Info;
    let mut quiet = false;
    let mut conflict = false;
    match &e {
        Event::FolderState {
            folder,
            state,
            error,
        } => {
            let mut before = String::new();
            if let Some(f) = app.status.folders.iter_mut().find(|f| f.id == *folder) {
                before = std::mem::replace(&mut f.state, state.clone());
                f.error = error.clone();
            }
            // Scans and pulls come and go all the time: the tables show them; the log
            // keeps what needs a look (errors, pauses, and getting over them).
            quiet = match state.as_str() {
                "scanning" | "syncing" => error.is_none(),
                "idle" => error.is_none() && !matches!(before.as_str(), "error" | "paused"),
                _ => false,
            };
            if state != "scanning" {
                app.scans.remove(folder);
            }
            if state == "error" {
                level = Level::Error;
            } else if error.is_some() {
                level = Level::Warn;
            }
        }
        Event::ScanProgress {
            folder,
            bytes_done,
            bytes_total,
            ..
        } => {
            // Too many to log; the folder's gauge shows them.
            app.scans
                .insert(folder.clone(), (*bytes_done, *bytes_total));
            return Vec::new();
        }
        Event::SyncProgress {
            folder,
            need_files,
            need_bytes,
        } => {
            if let Some(f) = app.status.folders.iter_mut().find(|f| f.id == *folder) {
                f.need_files = *need_files;
                f.need_bytes = *need_bytes;
            }
            return vec![Effect::Refresh];
        }
        Event::DeviceConnected { device, address } => {
            if let Some(d) = app.status.devices.iter_mut().find(|d| d.id == *device) {
                d.connected = true;
                d.address = Some(address.clone());
            }
            app.last_seen.insert(device.clone(), app.now);
        }
        Event::DeviceDisconnected { device, .. } => {
            if let Some(d) = app.status.devices.iter_mut().find(|d| d.id == *device) {
                d.connected = false;
                d.address = None;
            }
            app.last_seen.insert(device.clone(), app.now);
        }
        Event::FileChanged {
            folder,
            name,
            device,
            deleted,
        } => {
            let list = app.changes.entry(folder.clone()).or_default();
            list.push_front(FileChange {
                time: app.now,
                name: name.clone(),
                device: device.clone(),
                deleted: *deleted,
            });
            list.truncate(RECENT_PER_FOLDER);
            if name.contains(CONFLICT_MARK) {
                conflict = true;
            }
        }
        Event::PendingDevice {
            device,
            name,
            address,
        } => {
            // A device keeps knocking while it is not trusted: say so once.
            quiet = app.pending.devices.iter().any(|d| d.id == *device);
            if !quiet {
                app.pending.devices.insert(
                    0,
                    PendingDevice {
                        id: device.clone(),
                        name: name.clone(),
                        address: address.clone(),
                        last_seen: crate::service::now_rfc3339(),
                    },
                );
            }
        }
        Event::PendingFolder {
            folder,
            label,
            device,
        } => match app.pending.folders.iter_mut().find(|f| f.id == *folder) {
            Some(f) => {
                if !f.offered_by.contains(device) {
                    f.offered_by.push(device.clone());
                }
            }
            None => app.pending.folders.insert(
                0,
                PendingFolder {
                    id: folder.clone(),
                    label: label.clone(),
                    offered_by: vec![device.clone()],
                },
            ),
        },
        Event::ConfigChanged => {}
        Event::Log { level: l, .. } => level = Level::parse(l),
    }
    let mut effects = vec![Effect::Refresh];
    if conflict {
        effects.push(Effect::LoadConflicts);
    }
    if quiet {
        return effects;
    }
    if matches!(e, Event::PendingDevice { .. } | Event::PendingFolder { .. }) {
        app.notice = Some(Notice {
            error: false,
            text: text::event_text(app, &e),
        });
    }
    app.push_log(level, LogText::Event(e));
    effects
}

fn apply_snapshot(app: &mut App, s: Snapshot) {
    for d in &s.status.devices {
        if d.connected {
            app.last_seen.insert(d.id.clone(), app.now);
        }
        app.traffic.entry(d.id.clone()).or_default().sample(
            d.in_bytes_total,
            d.out_bytes_total,
            s.taken,
        );
    }
    app.traffic
        .retain(|id, _| s.status.devices.iter().any(|d| d.id == *id));
    app.scans.retain(|id, _| {
        s.status
            .folders
            .iter()
            .any(|f| f.id == *id && f.state == "scanning")
    });
    // An open add-folder dialog lists the devices trusted now (ticks kept).
    if let Some(Overlay::Dialog(Dialog::AddFolder(f))) = &mut app.overlay {
        f.share
            .retain(|c| s.status.devices.iter().any(|d| d.id == c.id));
        for d in &s.status.devices {
            if !f.share.iter().any(|c| c.id == d.id) {
                f.share.push(Choice {
                    id: d.id.clone(),
                    name: d.name.clone(),
                    ticked: false,
                });
            }
        }
        f.cursor = f.cursor.min(f.share.len().saturating_sub(1));
    }
    app.status = s.status;
    app.folder_conf = s.folders;
    app.device_conf = s.devices;
    app.pending = s.pending;
    app.loaded = true;
    app.link = LinkState::Up;
    app.sel_folder = app
        .sel_folder
        .min(app.status.folders.len().saturating_sub(1));
    app.sel_device = app
        .sel_device
        .min(app.status.devices.len().saturating_sub(1));
    app.sel_pending = app.sel_pending.min(app.pending_count().saturating_sub(1));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::ServiceKind;
    use crate::tui::sample;

    fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
        update(app, Action::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn typed(app: &mut App, s: &str) {
        for c in s.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    fn dialog(app: &App) -> &Dialog {
        match &app.overlay {
            Some(Overlay::Dialog(d)) => d,
            other => panic!("no dialog open: {other:?}"),
        }
    }

    #[test]
    fn tab_and_numbers_switch_screens() {
        let mut app = sample::app();
        assert_eq!(app.screen, Screen::Overview);
        press(&mut app, KeyCode::Tab);
        assert_eq!(app.screen, Screen::Folders);
        press(&mut app, KeyCode::BackTab);
        press(&mut app, KeyCode::BackTab);
        assert_eq!(app.screen, Screen::Events);
        press(&mut app, KeyCode::Char('3'));
        assert_eq!(app.screen, Screen::Devices);
        press(&mut app, KeyCode::Char('q'));
        assert!(app.quit);
    }

    #[test]
    fn help_and_qr_overlays_close_with_escape() {
        let mut app = sample::app();
        press(&mut app, KeyCode::Char('?'));
        assert_eq!(app.overlay, Some(Overlay::Help { scroll: 0 }));
        press(&mut app, KeyCode::Down);
        assert_eq!(app.overlay, Some(Overlay::Help { scroll: 1 }));
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.overlay, None);
        press(&mut app, KeyCode::Char('i'));
        assert_eq!(app.overlay, Some(Overlay::Qr));
        // q inside an overlay closes it instead of quitting.
        press(&mut app, KeyCode::Char('q'));
        assert_eq!(app.overlay, None);
        assert!(!app.quit);
    }

    #[test]
    fn add_device_dialog_checks_the_id_and_sends_the_change() {
        let mut app = sample::app();
        press(&mut app, KeyCode::Char('a'));
        assert!(matches!(dialog(&app), Dialog::AddDevice(_)));
        // Keys are typed into the dialog, not taken as commands.
        typed(&mut app, "q1");
        assert!(!app.quit);
        let effects = press(&mut app, KeyCode::Enter);
        assert!(effects.is_empty());
        let Dialog::AddDevice(a) = dialog(&app) else {
            panic!("dialog changed")
        };
        assert_eq!(a.id.value, "q1");
        let err = a.error.clone().expect("refused");
        assert!(err.contains("not in the base32 alphabet"), "{err}");
        // Escape closes without sending anything.
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.overlay, None);

        press(&mut app, KeyCode::Char('a'));
        update(&mut app, Action::Paste(format!("{}\n", sample::STRANGER)));
        press(&mut app, KeyCode::Tab);
        typed(&mut app, "nas");
        press(&mut app, KeyCode::Tab);
        typed(&mut app, "192.0.2.7:22100");
        let effects = press(&mut app, KeyCode::Enter);
        assert_eq!(app.overlay, None);
        let [Effect::Call { request, .. }] = effects.as_slice() else {
            panic!("expected one call: {effects:?}")
        };
        assert_eq!(
            *request,
            Request::Change {
                change: ConfigChange::AddDevice {
                    id: sample::STRANGER.parse().expect("id"),
                    name: Some("nas".into()),
                    addresses: vec!["192.0.2.7:22100".into()],
                }
            }
        );
        assert_eq!(app.in_flight, 1);
    }

    #[test]
    fn add_device_refuses_a_bad_address() {
        let mut app = sample::app();
        press(&mut app, KeyCode::Char('a'));
        update(&mut app, Action::Paste(sample::STRANGER.into()));
        press(&mut app, KeyCode::BackTab);
        typed(&mut app, "nowhere");
        assert!(press(&mut app, KeyCode::Enter).is_empty());
        let Dialog::AddDevice(a) = dialog(&app) else {
            panic!("dialog changed")
        };
        assert!(a.error.as_deref().unwrap_or("").contains("HOST:PORT"));
    }

    #[test]
    fn add_folder_dialog_ticks_devices_and_sends_the_change() {
        let mut app = sample::app();
        app.user_home = Some(PathBuf::from("/nonexistent-home"));
        press(&mut app, KeyCode::Char('n'));
        typed(&mut app, "~/Music");
        press(&mut app, KeyCode::Tab); // label
        press(&mut app, KeyCode::Tab); // mode
        press(&mut app, KeyCode::Char(' ')); // send-only
        press(&mut app, KeyCode::Tab); // share
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Char(' '));
        let effects = press(&mut app, KeyCode::Enter);
        let [Effect::Call { request, .. }] = effects.as_slice() else {
            panic!("expected one call: {effects:?}")
        };
        let Request::Change {
            change:
                ConfigChange::AddFolder {
                    label,
                    path,
                    mode,
                    devices,
                    ..
                },
        } = request
        else {
            panic!("not an add: {request:?}")
        };
        assert_eq!(label, "Music");
        assert_eq!(path, &PathBuf::from("/nonexistent-home/Music"));
        assert_eq!(*mode, FolderMode::SendOnly);
        assert_eq!(
            devices,
            &vec![app.status.devices[1].id.parse().expect("id")]
        );
    }

    #[test]
    fn folder_actions_send_the_matching_requests() {
        let mut app = sample::app();
        press(&mut app, KeyCode::Char('2'));
        let effects = press(&mut app, KeyCode::Char('r'));
        assert!(matches!(
            effects.as_slice(),
            [Effect::Call { request: Request::Rescan { folder: Some(f) }, .. }] if f == "docs-7f3k2"
        ));
        press(&mut app, KeyCode::Down);
        let effects = press(&mut app, KeyCode::Char('p'));
        assert!(matches!(
            effects.as_slice(),
            [Effect::Call {
                request: Request::Change {
                    change: ConfigChange::PauseFolder { paused: true, .. }
                },
                ..
            }]
        ));
        // Removing asks first; n keeps the folder.
        assert!(press(&mut app, KeyCode::Char('x')).is_empty());
        assert!(matches!(dialog(&app), Dialog::Confirm { .. }));
        assert!(press(&mut app, KeyCode::Char('n')).is_empty());
        assert_eq!(app.overlay, None);
        press(&mut app, KeyCode::Char('x'));
        let effects = press(&mut app, KeyCode::Char('y'));
        assert!(matches!(
            effects.as_slice(),
            [Effect::Call {
                request: Request::Change {
                    change: ConfigChange::RemoveFolder { .. }
                },
                ..
            }]
        ));
        // Mode: the picker starts at the folder's mode.
        press(&mut app, KeyCode::Char('m'));
        assert!(matches!(dialog(&app), Dialog::Mode { cursor: 0, .. }));
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        let effects = press(&mut app, KeyCode::Enter);
        assert!(matches!(
            effects.as_slice(),
            [Effect::Call {
                request: Request::Change {
                    change: ConfigChange::SetFolderMode {
                        mode: FolderMode::ReceiveOnly,
                        ..
                    }
                },
                ..
            }]
        ));
    }

    #[test]
    fn accepting_a_folder_asks_for_a_path_under_shoal() {
        let mut app = sample::app();
        app.user_home = Some(PathBuf::from("/home/ana"));
        press(&mut app, KeyCode::Char('4'));
        press(&mut app, KeyCode::Down); // the pending folder, after the pending device
        press(&mut app, KeyCode::Enter);
        let Dialog::AcceptFolder { path, .. } = dialog(&app) else {
            panic!("no path asked")
        };
        assert_eq!(path.value, "~/Shoal/Photos");
        let effects = press(&mut app, KeyCode::Enter);
        assert_eq!(
            effects,
            vec![Effect::Call {
                what: text::act_accept_folder("Photos"),
                request: Request::AcceptFolder {
                    folder: "photos-9d2".into(),
                    path: "/home/ana/Shoal/Photos".into()
                }
            }]
        );
    }

    #[test]
    fn events_change_state_at_once_and_ask_for_a_refresh() {
        let mut app = sample::app();
        let effects = update(
            &mut app,
            Action::Event(Event::FolderState {
                folder: "docs-7f3k2".into(),
                state: "syncing".into(),
                error: None,
            }),
        );
        assert_eq!(effects, vec![Effect::Refresh]);
        assert_eq!(app.status.folders[0].state, "syncing");
        let by = app.status.devices[0].id[..7].to_string();
        update(
            &mut app,
            Action::Event(Event::FileChanged {
                folder: "docs-7f3k2".into(),
                name: "a/b.txt".into(),
                device: by,
                deleted: false,
            }),
        );
        assert_eq!(app.changes["docs-7f3k2"][0].name, "a/b.txt");
        let line = app.log.back().expect("logged");
        assert!(text::log_text(&app, line).contains("laptop"));
        let dev = app.status.devices[0].id.clone();
        update(
            &mut app,
            Action::Event(Event::DeviceDisconnected {
                device: dev,
                reason: "closed".into(),
            }),
        );
        assert!(!app.status.devices[0].connected);
    }

    #[test]
    fn an_open_add_folder_dialog_follows_the_trusted_devices() {
        let mut app = App::new(ServiceKind::Embedded, String::new(), None);
        press(&mut app, KeyCode::Char('n'));
        let Dialog::AddFolder(f) = dialog(&app) else {
            panic!("no dialog")
        };
        assert!(f.share.is_empty());
        let snap = sample::snapshot(std::time::Instant::now());
        update(&mut app, Action::Snapshot(Box::new(snap)));
        let Dialog::AddFolder(f) = dialog(&app) else {
            panic!("dialog closed")
        };
        assert_eq!(f.share.len(), 3);
    }

    #[test]
    fn the_log_keeps_what_matters_and_folds_repeats() {
        let mut app = App::new(ServiceKind::Embedded, String::new(), None);
        let state = |s: &str| {
            Action::Event(Event::FolderState {
                folder: "f".into(),
                state: s.into(),
                error: None,
            })
        };
        app.status.folders.push(crate::tui::app::FolderStatus {
            id: "f".into(),
            state: "idle".into(),
            ..Default::default()
        });
        for s in ["scanning", "idle", "syncing", "idle"] {
            update(&mut app, state(s));
        }
        assert!(app.log.is_empty(), "{:?}", app.log);
        update(&mut app, state("paused"));
        update(&mut app, state("idle"));
        assert_eq!(app.log.len(), 2);
        for _ in 0..3 {
            for e in [
                Event::DeviceConnected {
                    device: "D".into(),
                    address: "a".into(),
                },
                Event::DeviceDisconnected {
                    device: "D".into(),
                    reason: "not trusted".into(),
                },
            ] {
                update(&mut app, Action::Event(e));
            }
        }
        assert_eq!(app.log.len(), 4);
        assert_eq!(app.log.back().map(|l| l.repeats), Some(3));
    }

    #[test]
    fn opening_the_events_screen_reads_the_conflicts() {
        let mut app = sample::app();
        assert!(press(&mut app, KeyCode::Char('4')).is_empty());
        assert_eq!(press(&mut app, KeyCode::Tab), vec![Effect::LoadConflicts]);
        assert!(press(&mut app, KeyCode::Char('5')).is_empty());
        update(&mut app, Action::Conflicts(Err("bad request".into())));
        assert!(matches!(app.conflicts, Conflicts::Unavailable(_)));
    }

    #[test]
    fn rates_come_from_successive_totals() {
        let mut app = App::new(ServiceKind::Embedded, String::new(), None);
        let t0 = std::time::Instant::now();
        let mut snap = sample::snapshot(t0);
        update(&mut app, Action::Snapshot(Box::new(snap.clone())));
        snap.taken = t0 + std::time::Duration::from_secs(2);
        snap.status.devices[0].in_bytes_total += 2_000_000;
        update(&mut app, Action::Snapshot(Box::new(snap)));
        let t = &app.traffic[&app.status.devices[0].id];
        assert_eq!(t.in_rate, 1_000_000);
        assert_eq!(t.out_rate, 0);
        assert_eq!(t.in_history.len(), 1);
    }

    #[test]
    fn answers_show_in_the_status_bar() {
        let mut app = sample::app();
        app.in_flight = 1;
        let effects = update(
            &mut app,
            Action::Done {
                what: "Rescanning Docs".into(),
                result: Err("folder \"x\" is not running".into()),
            },
        );
        assert_eq!(effects, vec![Effect::Refresh]);
        let n = app.notice.clone().expect("notice");
        assert!(n.error && n.text.contains("not running"), "{n:?}");
        assert_eq!(app.in_flight, 0);
    }
}
