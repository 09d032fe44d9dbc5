//! The dashboard end to end: the real `shoal tui` in a detached tmux session of 100×30,
//! driven by keystrokes only (`send-keys`) and read back from the screen (`capture-pane`).

use crate::harness::{BIN, Device, free_port, wait_until};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A tmux server and session of this test's own (its own socket in the test's temp
/// directory, so nothing else the user runs in tmux is touched), killed by name when
/// dropped.
struct Tmux {
    socket: std::path::PathBuf,
    session: String,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }

    /// Runs `shell` in a new detached session of 100×30, its server listening on `socket`.
    fn start(socket: &Path, name: &str, shell: &str) -> Self {
        let t = Self {
            socket: socket.to_path_buf(),
            session: name.to_string(),
        };
        let out = t
            .cmd()
            .args(["new-session", "-d", "-s", name, "-x", "100", "-y", "30"])
            .arg(shell)
            .env_remove("SHOAL_HOME")
            .env_remove("SHOAL_LOG")
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    /// Presses keys by their tmux names (`Tab`, `Enter`, `Space`, `q`…).
    fn keys(&self, keys: &[&str]) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", &self.session])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    /// Types text literally.
    fn text(&self, s: &str) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", &self.session, "-l", s])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows every one of `needles`; panics with the screen if not.
    #[track_caller]
    fn expect(&self, needles: &[&str], timeout: Duration) -> String {
        let mut last = String::new();
        let ok = wait_until(timeout, || {
            last = self.screen();
            needles.iter().all(|n| last.contains(n))
        });
        assert!(ok, "the screen never showed {needles:?}:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["kill-session", "-t", &self.session])
            .output();
    }
}

fn init(name: &str, port: u16) -> Device {
    let d = Device::new();
    d.run(&[
        "init",
        "--name",
        name,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .ok();
    d
}

fn pending(d: &Device) -> serde_json::Value {
    d.run(&["pending", "--json"]).json()
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[test]
fn tui_pairs_shares_and_shows_a_synced_file_by_keystrokes() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed; the dashboard's end-to-end test needs it");
        return;
    }
    let (pa, pb) = (free_port(), free_port());
    let a = init("alpha", pa);
    let b = init("beta", pb);
    let (ida, idb) = (a.id(), b.id());
    // B runs headless and does not trust A yet; A has no service: its dashboard embeds one.
    let sb = b.serve();
    let tui = Tmux::start(
        &a.path("tmux.sock"),
        &format!("shoal-tui-{}", std::process::id()),
        &format!(
            "'{BIN}' --home '{}' tui; echo TUI-EXITED $?; sleep 60",
            a.home().display()
        ),
    );
    let wait = Duration::from_secs(10);
    tui.expect(&["embedded service", "● live", "alpha", &ida[..7]], wait);

    // Add B: paste its ID (checked as it is typed), name it, give its address.
    tui.keys(&["a"]);
    tui.text(&idb);
    tui.expect(&["a valid device ID"], wait);
    tui.keys(&["Tab"]);
    tui.text("beta");
    tui.keys(&["Tab"]);
    tui.text(&format!("127.0.0.1:{pb}"));
    tui.keys(&["Enter"]);
    tui.expect(&["Adding device beta: done"], wait);

    // B hears A knock; B's own dashboard (attached to B's service) accepts it by keys.
    assert!(
        wait_until(wait, || pending(&b)["devices"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["id"] == ida.as_str()))),
        "A never showed up in B's pending list"
    );
    let tui_b = Tmux::start(
        &b.path("tmux.sock"),
        &format!("shoal-tui-b-{}", std::process::id()),
        &format!(
            "'{BIN}' --home '{}' tui; echo TUI-EXITED $?; sleep 60",
            b.home().display()
        ),
    );
    tui_b.expect(&["attached", "beta"], wait);
    tui_b.keys(&["4"]);
    tui_b.expect(&["alpha"], wait);
    tui_b.keys(&["Enter"]);
    tui_b.expect(&["Trusting alpha: done"], wait);
    // The Overview's device table (not the event log) says so.
    tui.expect(&[&format!("connected  {}", &idb[..7])], wait);

    // A adds a folder shared with B: path, then Tab to the share list, tick B, Enter.
    let fa = a.path("fa");
    tui.keys(&["n"]);
    tui.text(fa.to_str().expect("utf8"));
    tui.keys(&["Tab", "Tab", "Tab", "Space"]);
    tui.expect(&["[x] beta"], wait);
    tui.keys(&["Enter"]);
    tui.expect(&["Adding folder fa: done"], wait);

    // B accepts the offer by keys too: the offer is the only pending entry now.
    let mut folder = String::new();
    assert!(
        wait_until(wait, || {
            folder = pending(&b)["folders"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            !folder.is_empty()
        }),
        "the folder was never offered to B"
    );
    let fb = b.path("fb");
    tui_b.expect(&["fa"], wait);
    tui_b.keys(&["Enter"]);
    tui_b.expect(&["Accept offered folder"], wait);
    tui_b.keys(&["C-u"]);
    tui_b.text(fb.to_str().expect("utf8"));
    tui_b.keys(&["Enter"]);
    tui_b.expect(&["Adding offered folder"], wait);
    assert!(
        wait_until(wait, || b.run(&["folder", "ls", "--json"]).json()[0]["id"]
            == folder.as_str()),
        "B's dashboard did not add the offered folder"
    );
    // No restart: accepting the folder while connected starts the index exchange both ways.

    // A file written on A arrives on B.
    std::fs::write(fa.join("hello-from-a.txt"), "hello from alpha\n").expect("write");
    assert!(
        wait_until(wait, || read(&fb.join("hello-from-a.txt")).as_deref()
            == Some("hello from alpha\n")),
        "the file never reached B"
    );

    // A file written on B arrives on A, and A's Folders screen names it and who sent it.
    tui.keys(&["2"]);
    std::fs::write(fb.join("note-from-b.txt"), "hi from beta\n").expect("write");
    assert!(
        wait_until(wait, || read(&fa.join("note-from-b.txt")).as_deref()
            == Some("hi from beta\n")),
        "the file never reached A"
    );
    let screen = tui.expect(&["note-from-b.txt (by beta)", "Recent changes"], wait);
    assert!(screen.contains("fa"), "{screen}");

    // The Events screen asks the service for its conflict copies (none here) and shows
    // the file's arrival in the log.
    tui.keys(&["5"]);
    tui.expect(
        &["Conflicts (0)", "note-from-b.txt updated (by beta)"],
        wait,
    );

    // q quits within 5 s, and the embedded service stops with it.
    tui.keys(&["q"]);
    tui.expect(&["TUI-EXITED 0"], Duration::from_secs(10));
    assert_eq!(a.status()["service_running"], false);
    drop(sb);
}
