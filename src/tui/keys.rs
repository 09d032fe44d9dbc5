//! Every key binding of the dashboard, in one table.
//!
//! `update` finds what a key means here and nowhere else, and the `?` overlay and the
//! footer's hints are drawn from the same table, so what the help says is what the keys
//! do. The words shown for each binding live in `text`.

use super::app::Screen;
use super::text;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Quit,
    Help,
    NextScreen,
    PrevScreen,
    Goto(Screen),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    ShowQr,
    AddDevice,
    AddFolder,
    Rescan,
    TogglePause,
    Share,
    Mode,
    Remove,
    Rename,
    Accept,
    Dismiss,
    /// Dialogs and overlays.
    Close,
    Confirm,
    NextField,
    PrevField,
    Toggle,
    ClearField,
    Backspace,
}

/// Where a binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every screen (not inside a dialog).
    Global,
    Screen(Screen),
    /// Inside a dialog.
    Dialog,
    /// The help and QR overlays.
    Overlay,
}

/// One key: a code, and whether Ctrl is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

/// A row of the table.
pub struct Binding {
    pub scope: Scope,
    pub keys: &'static [Key],
    pub command: Command,
    /// What `?` says it does.
    pub help: &'static str,
    /// The footer's word for it, for the bindings worth a hint there.
    pub hint: Option<&'static str>,
}

const fn b(
    scope: Scope,
    keys: &'static [Key],
    command: Command,
    help: &'static str,
    hint: Option<&'static str>,
) -> Binding {
    Binding {
        scope,
        keys,
        command,
        help,
        hint,
    }
}

use Command as C;
use Scope as S;
use text::keys as t;

const OVERVIEW: Scope = S::Screen(Screen::Overview);
const FOLDERS: Scope = S::Screen(Screen::Folders);
const DEVICES: Scope = S::Screen(Screen::Devices);
const PENDING: Scope = S::Screen(Screen::Pending);
const EVENTS: Scope = S::Screen(Screen::Events);

/// The table. Within a scope the first match wins; a screen's own bindings are looked up
/// before the global ones.
#[rustfmt::skip]
pub const BINDINGS: &[Binding] = &[
    b(S::Global, &[k('q'), ctrl('c')], C::Quit, t::QUIT, Some(t::HINT_QUIT)),
    b(S::Global, &[k('?')], C::Help, t::HELP, Some(t::HINT_HELP)),
    b(S::Global, &[code(KeyCode::Tab)], C::NextScreen, t::NEXT, Some(t::HINT_NEXT)),
    b(S::Global, &[code(KeyCode::BackTab)], C::PrevScreen, t::PREV, None),
    b(S::Global, &[k('1')], C::Goto(Screen::Overview), t::GOTO_OVERVIEW, None),
    b(S::Global, &[k('2')], C::Goto(Screen::Folders), t::GOTO_FOLDERS, None),
    b(S::Global, &[k('3')], C::Goto(Screen::Devices), t::GOTO_DEVICES, None),
    b(S::Global, &[k('4')], C::Goto(Screen::Pending), t::GOTO_PENDING, None),
    b(S::Global, &[k('5')], C::Goto(Screen::Events), t::GOTO_EVENTS, None),
    b(S::Global, &[code(KeyCode::Up), k('k')], C::Up, t::UP, None),
    b(S::Global, &[code(KeyCode::Down), k('j')], C::Down, t::DOWN, None),
    b(S::Global, &[code(KeyCode::PageUp)], C::PageUp, t::PAGE_UP, None),
    b(S::Global, &[code(KeyCode::PageDown)], C::PageDown, t::PAGE_DOWN, None),
    b(S::Global, &[code(KeyCode::Home), k('g')], C::Top, t::TOP, None),
    b(S::Global, &[code(KeyCode::End), k('G')], C::Bottom, t::BOTTOM, None),
    b(OVERVIEW, &[k('i')], C::ShowQr, t::SHOW_QR, Some(t::HINT_QR)),
    b(OVERVIEW, &[k('a')], C::AddDevice, t::ADD_DEVICE, Some(t::HINT_ADD_DEVICE)),
    b(OVERVIEW, &[k('n')], C::AddFolder, t::ADD_FOLDER, Some(t::HINT_ADD_FOLDER)),
    b(FOLDERS, &[k('a'), k('n')], C::AddFolder, t::ADD_FOLDER, Some(t::HINT_ADD)),
    b(FOLDERS, &[k('r')], C::Rescan, t::RESCAN, Some(t::HINT_RESCAN)),
    b(FOLDERS, &[k('p')], C::TogglePause, t::PAUSE_FOLDER, Some(t::HINT_PAUSE)),
    b(FOLDERS, &[k('s')], C::Share, t::SHARE, Some(t::HINT_SHARE)),
    b(FOLDERS, &[k('m')], C::Mode, t::MODE, Some(t::HINT_MODE)),
    b(FOLDERS, &[k('x'), code(KeyCode::Delete)], C::Remove, t::REMOVE_FOLDER, Some(t::HINT_REMOVE)),
    b(DEVICES, &[k('a')], C::AddDevice, t::ADD_DEVICE, Some(t::HINT_ADD)),
    b(DEVICES, &[k('e')], C::Rename, t::RENAME, Some(t::HINT_RENAME)),
    b(DEVICES, &[k('p')], C::TogglePause, t::PAUSE_DEVICE, Some(t::HINT_PAUSE)),
    b(DEVICES, &[k('x'), code(KeyCode::Delete)], C::Remove, t::REMOVE_DEVICE, Some(t::HINT_REMOVE)),
    b(PENDING, &[code(KeyCode::Enter), k('y')], C::Accept, t::ACCEPT, Some(t::HINT_ACCEPT)),
    b(PENDING, &[k('x'), code(KeyCode::Delete)], C::Dismiss, t::DISMISS, Some(t::HINT_DISMISS)),
    b(EVENTS, &[code(KeyCode::Up), k('k')], C::Up, t::SCROLL_UP, Some(t::HINT_SCROLL)),
    b(EVENTS, &[code(KeyCode::Down), k('j')], C::Down, t::SCROLL_DOWN, None),
    b(EVENTS, &[code(KeyCode::End), k('G')], C::Bottom, t::FOLLOW, None),
    b(S::Dialog, &[code(KeyCode::Esc)], C::Close, t::CANCEL, Some(t::HINT_CANCEL)),
    b(S::Dialog, &[code(KeyCode::Enter)], C::Confirm, t::CONFIRM, Some(t::HINT_CONFIRM)),
    b(S::Dialog, &[code(KeyCode::Tab)], C::NextField, t::NEXT_FIELD, Some(t::HINT_FIELD)),
    b(S::Dialog, &[code(KeyCode::BackTab)], C::PrevField, t::PREV_FIELD, None),
    b(S::Dialog, &[code(KeyCode::Up)], C::Up, t::LIST_UP, None),
    b(S::Dialog, &[code(KeyCode::Down)], C::Down, t::LIST_DOWN, None),
    b(S::Dialog, &[k(' ')], C::Toggle, t::TOGGLE, None),
    b(S::Dialog, &[code(KeyCode::Backspace)], C::Backspace, t::BACKSPACE, None),
    b(S::Dialog, &[ctrl('u')], C::ClearField, t::CLEAR, None),
    b(S::Overlay, &[code(KeyCode::Esc), k('q'), k('?'), k('i')], C::Close, t::CLOSE, Some(t::HINT_CLOSE)),
    b(S::Overlay, &[code(KeyCode::Up), k('k')], C::Up, t::SCROLL_UP, None),
    b(S::Overlay, &[code(KeyCode::Down), k('j')], C::Down, t::SCROLL_DOWN, None),
];

impl Key {
    pub fn matches(&self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        // Shift-Tab arrives as BackTab with Shift; letters with Shift arrive as capitals.
        self.code == key.code && self.ctrl == ctrl
    }
}

/// What `key` means in `scope` (for a screen, its own bindings first, then the global ones).
pub fn lookup(scope: Scope, key: &KeyEvent) -> Option<Command> {
    let find = |s: Scope| {
        BINDINGS
            .iter()
            .filter(|b| b.scope == s)
            .find(|b| b.keys.iter().any(|k| k.matches(key)))
            .map(|b| b.command)
    };
    match scope {
        Scope::Screen(_) => find(scope).or_else(|| find(Scope::Global)),
        _ => find(scope),
    }
}

/// The footer's hints for a scope: (keys, word).
pub fn hints(scope: Scope) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let scopes: &[Scope] = match scope {
        Scope::Screen(_) => &[scope, Scope::Global],
        _ => &[scope],
    };
    for s in scopes {
        for b in BINDINGS.iter().filter(|b| b.scope == *s) {
            if let Some(h) = b.hint {
                out.push((key_names(b.keys, 2), h));
            }
        }
    }
    out
}

/// The names of at most `max` keys of a binding, joined with `/`.
pub fn key_names(keys: &[Key], max: usize) -> String {
    keys.iter()
        .take(max)
        .map(|k| text::key_name(k.code, k.ctrl))
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn screen_bindings_come_before_global_ones() {
        assert_eq!(
            lookup(Scope::Screen(Screen::Folders), &key(KeyCode::Char('r'))),
            Some(Command::Rescan)
        );
        assert_eq!(
            lookup(Scope::Screen(Screen::Devices), &key(KeyCode::Char('r'))),
            None
        );
        assert_eq!(
            lookup(Scope::Screen(Screen::Devices), &key(KeyCode::Char('q'))),
            Some(Command::Quit)
        );
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(
            lookup(Scope::Screen(Screen::Events), &ctrl_c),
            Some(Command::Quit)
        );
    }

    #[test]
    fn no_key_is_bound_twice_in_one_scope() {
        for (i, a) in BINDINGS.iter().enumerate() {
            for b in &BINDINGS[i + 1..] {
                if a.scope != b.scope {
                    continue;
                }
                for k in a.keys {
                    assert!(!b.keys.contains(k), "{k:?} bound twice in {:?}", a.scope);
                }
            }
        }
    }
}
