//! Whole frames drawn from fixed sample state on a `TestBackend`, kept as insta
//! snapshots: every screen and dialog, an error state, and small terminals.

use super::app::{
    AddDevice, AddFolder, App, Choice, DeviceField, Dialog, FolderField, Input, LinkState, Overlay,
    Screen, ServiceKind,
};
use super::render::render;
use super::sample;
use super::update::{Action, update};
use crate::service::api::Request;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn draw(app: &App, width: u16, height: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    t.draw(|f| render(app, f)).expect("draw");
    t.backend().to_string()
}

fn on(screen: Screen) -> App {
    let mut app = sample::app();
    app.screen = screen;
    app
}

fn with(dialog: Dialog) -> App {
    let mut app = sample::app();
    app.overlay = Some(Overlay::Dialog(dialog));
    app
}

#[test]
fn overview_100x30() {
    insta::assert_snapshot!(draw(&sample::app(), 100, 30));
}

#[test]
fn overview_80x24() {
    let frame = draw(&sample::app(), 80, 24);
    // The first screen names every folder and device of the sample without scrolling.
    for word in [
        "AEAQCAI",
        "Docs",
        "Music",
        "Backup",
        "Notes",
        "laptop",
        "nas",
        "phone",
        "idle",
        "error",
        "paused",
        "connected",
    ] {
        assert!(frame.contains(word), "{word} missing:\n{frame}");
    }
    insta::assert_snapshot!(frame);
}

#[test]
fn overview_60x20_narrow() {
    let frame = draw(&sample::app(), 60, 20);
    for word in ["AEAQCAI", "Docs", "Backup", "laptop", "nas"] {
        assert!(frame.contains(word), "{word} missing:\n{frame}");
    }
    insta::assert_snapshot!(frame);
}

#[test]
fn overview_80x16_short() {
    let frame = draw(&sample::app(), 80, 16);
    for word in ["AEAQCAI", "Docs", "Notes", "laptop", "phone"] {
        assert!(frame.contains(word), "{word} missing:\n{frame}");
    }
    insta::assert_snapshot!(frame);
}

#[test]
fn overview_before_the_first_answer_embedded() {
    let app = App::new(ServiceKind::Embedded, sample::id(1), None);
    insta::assert_snapshot!(draw(&app, 100, 30));
}

#[test]
fn overview_service_lost() {
    let mut app = sample::app();
    app.link = LinkState::Down("connection closed".into());
    insta::assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn too_small() {
    insta::assert_snapshot!(draw(&sample::app(), 30, 8));
}

#[test]
fn folders_syncing() {
    let mut app = on(Screen::Folders);
    app.sel_folder = 1;
    insta::assert_snapshot!(draw(&app, 100, 30));
}

#[test]
fn folders_recent_changes() {
    insta::assert_snapshot!(draw(&on(Screen::Folders), 100, 30));
}

#[test]
fn folders_error_in_full() {
    let mut app = on(Screen::Folders);
    app.sel_folder = 2;
    let frame = draw(&app, 100, 30);
    assert!(frame.contains("recreate the marker"), "{frame}");
    insta::assert_snapshot!(frame);
}

#[test]
fn folders_error_narrow() {
    let mut app = on(Screen::Folders);
    app.sel_folder = 2;
    insta::assert_snapshot!(draw(&app, 60, 20));
}

#[test]
fn folders_scanning() {
    let mut app = on(Screen::Folders);
    app.status.folders[0].state = "scanning".into();
    app.scans
        .insert("docs-7f3k2".into(), (1_200_000_000, 3_000_000_000));
    insta::assert_snapshot!(draw(&app, 100, 30));
}

#[test]
fn devices() {
    insta::assert_snapshot!(draw(&on(Screen::Devices), 100, 30));
}

#[test]
fn devices_offline_selected_narrow() {
    let mut app = on(Screen::Devices);
    app.sel_device = 1;
    insta::assert_snapshot!(draw(&app, 60, 20));
}

#[test]
fn pending() {
    insta::assert_snapshot!(draw(&on(Screen::Pending), 100, 30));
}

#[test]
fn pending_empty() {
    let mut app = on(Screen::Pending);
    app.pending = Default::default();
    insta::assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn events_and_conflicts() {
    insta::assert_snapshot!(draw(&on(Screen::Events), 100, 30));
}

#[test]
fn events_scrolled_back_no_conflict_list() {
    let mut app = on(Screen::Events);
    app.log_scroll = 3;
    app.conflicts = super::app::Conflicts::Unavailable("bad request".into());
    insta::assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn events_no_conflicts_narrow() {
    let mut app = on(Screen::Events);
    app.conflicts = super::app::Conflicts::Loaded(Vec::new());
    insta::assert_snapshot!(draw(&app, 60, 20));
}

#[test]
fn help_lists_every_binding() {
    let mut app = sample::app();
    app.overlay = Some(Overlay::Help { scroll: 0 });
    let frame = draw(&app, 100, 30);
    insta::assert_snapshot!(frame);
    // Every binding's text is in the help, scrolled or not.
    let all: String = super::overlays::help_lines()
        .iter()
        .map(|l| l.to_string() + "\n")
        .collect();
    for b in super::keys::BINDINGS {
        assert!(all.contains(b.help), "{} not in the help", b.help);
    }
}

#[test]
fn qr_code_100x30() {
    let mut app = sample::app();
    app.overlay = Some(Overlay::Qr);
    insta::assert_snapshot!(draw(&app, 100, 30));
}

#[test]
fn qr_code_80x24() {
    let mut app = sample::app();
    app.overlay = Some(Overlay::Qr);
    let frame = draw(&app, 80, 24);
    assert!(frame.contains('█'), "no QR code drawn:\n{frame}");
    insta::assert_snapshot!(frame);
}

#[test]
fn add_device_empty() {
    insta::assert_snapshot!(draw(
        &with(Dialog::AddDevice(AddDevice::default())),
        100,
        30
    ));
}

#[test]
fn add_device_bad_check_character() {
    // The stranger's ID with one letter changed in group 2.
    let typo = sample::STRANGER.replacen("OR523G3", "OR524G3", 1);
    let d = AddDevice {
        id: Input::new(typo),
        ..AddDevice::default()
    };
    let frame = draw(&with(Dialog::AddDevice(d)), 100, 30);
    assert!(frame.contains("wrong check character"), "{frame}");
    insta::assert_snapshot!(frame);
}

#[test]
fn add_device_valid_with_bad_address() {
    let d = AddDevice {
        focus: DeviceField::Address,
        id: Input::new(sample::STRANGER),
        name: Input::new("desk"),
        address: Input::new("desk.local"),
        error: Some(
            "bad device address \"desk.local\": use HOST:PORT, for example 192.0.2.7:22100 or nas.local:22100"
                .into(),
        ),
    };
    insta::assert_snapshot!(draw(&with(Dialog::AddDevice(d)), 80, 24));
}

#[test]
fn add_folder() {
    let mut app = sample::app();
    update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::NONE)),
    );
    if let Some(Overlay::Dialog(Dialog::AddFolder(f))) = &mut app.overlay {
        f.path = Input::new("~/Projects");
        f.focus = FolderField::Share;
        f.share[0].ticked = true;
        f.cursor = 1;
    }
    insta::assert_snapshot!(draw(&app, 100, 30));
}

#[test]
fn add_folder_narrow() {
    let d = AddFolder {
        share: vec![],
        error: Some("A path is needed.".into()),
        ..AddFolder::default()
    };
    insta::assert_snapshot!(draw(&with(Dialog::AddFolder(d)), 60, 20));
}

#[test]
fn rename_device() {
    let d = Dialog::RenameDevice {
        id: sample::id(3),
        input: Input::new("nas in the attic"),
    };
    insta::assert_snapshot!(draw(&with(d), 100, 30));
}

#[test]
fn share_folder() {
    let d = Dialog::Share {
        folder: "music-4hq".into(),
        label: "Music".into(),
        choices: vec![
            Choice {
                id: sample::id(3),
                name: "nas".into(),
                ticked: false,
            },
            Choice {
                id: sample::id(4),
                name: "phone".into(),
                ticked: false,
            },
        ],
        cursor: 1,
    };
    insta::assert_snapshot!(draw(&with(d), 100, 30));
}

#[test]
fn change_mode() {
    let d = Dialog::Mode {
        folder: "docs-7f3k2".into(),
        label: "Docs".into(),
        cursor: 2,
    };
    insta::assert_snapshot!(draw(&with(d), 100, 30));
}

#[test]
fn accept_folder() {
    let d = Dialog::AcceptFolder {
        folder: "photos-9d2".into(),
        label: "Photos".into(),
        path: Input::new("~/Shoal/Photos"),
        error: None,
    };
    let mut app = with(d);
    app.screen = Screen::Pending;
    insta::assert_snapshot!(draw(&app, 100, 30));
}

#[test]
fn confirm_remove() {
    let d = Dialog::Confirm {
        question: super::text::confirm_remove_folder("Docs", "/home/ana/Docs"),
        what: "Removing folder Docs".into(),
        request: Request::Status,
    };
    let mut app = with(d);
    app.screen = Screen::Folders;
    insta::assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn notice_after_a_failed_action() {
    let mut app = on(Screen::Folders);
    update(
        &mut app,
        Action::Done {
            what: "Rescanning Backup".into(),
            result: Err("folder \"backup-x1\": its path is missing".into()),
        },
    );
    insta::assert_snapshot!(draw(&app, 100, 30));
}

/// The loop runs on any backend: keys in, frames out, effects collected.
#[test]
fn the_loop_draws_handles_keys_and_quits() {
    let mut t = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    let mut app = sample::app();
    let (tx, rx) = std::sync::mpsc::channel();
    for c in ['2', 'r', 'q'] {
        tx.send(Action::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )))
        .expect("send");
    }
    let mut effects = Vec::new();
    super::run_loop(&mut t, &mut app, &rx, |e| effects.push(e)).expect("loop");
    assert!(app.quit);
    assert_eq!(app.screen, Screen::Folders);
    assert!(
        effects.iter().any(|e| matches!(
            e,
            super::Effect::Call {
                request: Request::Rescan { .. },
                ..
            }
        )),
        "{effects:?}"
    );
}

#[test]
fn log_lines_wrap_at_spaces_and_split_long_words() {
    use super::render::wrap;
    assert_eq!(wrap("one two three", 7), vec!["one two", "three"]);
    assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
    assert_eq!(wrap("", 5), vec![""]);
    // A width of zero still ends.
    assert_eq!(wrap("ab", 0), vec!["a", "b"]);
}

/// A service that sends nonsense sizes or thousands of entries still gets a frame.
#[test]
fn many_folders_and_devices_do_not_break_the_layout() {
    let mut app = sample::app();
    let f = app.status.folders[0].clone();
    let d = app.status.devices[0].clone();
    app.status.folders = vec![f; 5000];
    app.status.devices = vec![d; 3000];
    app.status.folders[0].local_bytes = u64::MAX;
    app.status.folders[0].need_bytes = u64::MAX;
    app.status.folders[0].state = "syncing".into();
    app.status.folders[1].state = "scanning".into();
    let id = app.status.folders[1].id.clone();
    app.scans.insert(id, (u64::MAX, 3));
    for screen in Screen::ALL {
        app.screen = screen;
        for (w, h) in [(100, 30), (60, 20), (40, 10)] {
            draw(&app, w, h);
        }
    }
}
