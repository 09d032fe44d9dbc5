//! Running the real binary: a temp home per device, output captured.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_shoal");

/// One device: a temp directory holding its home and room for its folders.
pub struct Device {
    pub dir: tempfile::TempDir,
}

/// What a command did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts a failure with exit code 1 whose first stderr line is `error: …` containing
    /// `needle`, and no panic text anywhere.
    #[track_caller]
    pub fn fails_with(&self, needle: &str) {
        assert_eq!(
            self.code, 1,
            "expected exit 1\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        let first = self.stderr.lines().next().unwrap_or("");
        assert!(first.starts_with("error: "), "first stderr line: {first:?}");
        assert!(
            first.contains(needle),
            "error line {first:?} does not contain {needle:?}"
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        assert!(!self.stderr.contains("internal error"), "{}", self.stderr);
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.stdout))
    }
}

impl Device {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A device with an initialised home listening on loopback.
    pub fn init() -> Self {
        let d = Self::new();
        d.run(&["init", "--name", "test", "--listen", "127.0.0.1:0"])
            .ok();
        d
    }

    /// A device initialised as `name`, listening on a free loopback port (returned).
    pub fn listening(name: &str) -> (Self, u16) {
        let port = free_port();
        let d = Self::new();
        d.run(&[
            "init",
            "--name",
            name,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .ok();
        (d, port)
    }

    /// Trusts the device `id`, dialled at `127.0.0.1:port`.
    pub fn trust(&self, id: &str, port: u16) {
        self.run(&["device", "add", id, "--addr", &format!("127.0.0.1:{port}")])
            .ok();
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `shoal --home HOME args…`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(BIN);
        cmd.arg("--home").arg(self.home()).args(args);
        cmd.env_remove("SHOAL_HOME").env_remove("SHOAL_LOG");
        Run::from(cmd.output().expect("run shoal"))
    }

    pub fn id(&self) -> String {
        self.run(&["id"]).ok().trim().to_string()
    }

    /// Adds a folder at `rel` and returns its ID.
    pub fn add_folder(&self, rel: &str, extra: &[&str]) -> String {
        let path = self.path(rel);
        let mut args = vec!["folder", "add", path.to_str().expect("utf8")];
        args.extend_from_slice(extra);
        self.run(&args).ok().trim().to_string()
    }
}

/// Runs the binary with no home flag and the given environment.
pub fn run_env(args: &[&str], env: &[(&str, &Path)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("SHOAL_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("run shoal"))
}

/// A fresh, valid-looking device ID that belongs to nobody here.
pub fn stranger_id() -> String {
    // The ID of one of Syncthing's real test certificates.
    "IICARZI-OR523G3-TAED5QZ-3A2LATC-DNYMGGA-FTBM734-PTTWSGI-3H3A4QG".to_string()
}

/// A running `shoal serve`, ended by its PID when dropped.
pub struct Service {
    pub child: std::process::Child,
    pub stderr_path: PathBuf,
}

impl Service {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal to this process (by PID).
    pub fn signal(&self, sig: rustix::process::Signal) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid()) {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Device {
    /// Starts `shoal serve` and waits until its control socket answers.
    pub fn serve(&self) -> Service {
        self.serve_with(&[])
    }

    /// Starts `WRAPPER… shoal --home HOME serve -vv` (e.g. `setpriv …`, or `unshare -m sh -c
    /// 'mount … && exec "$@"' sh`) and waits until its control socket answers. The wrapper
    /// must end in an `exec` of the rest, so the PID stays the service's own.
    pub fn serve_with(&self, wrapper: &[&str]) -> Service {
        let stderr_path = self.dir.path().join(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let mut cmd = match wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = cmd
            .arg("--home")
            .arg(self.home())
            .arg("serve")
            .arg("-vv")
            .env_remove("SHOAL_HOME")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).expect("log file"))
            .spawn()
            .expect("spawn serve");
        let mut s = Service { child, stderr_path };
        let ok = wait_until(std::time::Duration::from_secs(20), || {
            if let Ok(Some(_)) = s.child.try_wait() {
                return true;
            }
            let r = self.run(&["status", "--json"]);
            r.code == 0 && r.stdout.contains("\"service_running\": true")
        });
        if let Ok(Some(status)) = s.child.try_wait() {
            panic!("serve exited early ({status}): {}", s.log());
        }
        assert!(ok, "service did not start: {}", s.log());
        s
    }

    pub fn status(&self) -> serde_json::Value {
        self.run(&["status", "--json"]).json()
    }

    /// The address the running service listens on.
    pub fn listen_addr(&self) -> String {
        self.status()["listen_addresses"][0]
            .as_str()
            .expect("listen address")
            .to_string()
    }

    /// Whether the running service has `peer` connected.
    pub fn connected_to(&self, peer: &str) -> bool {
        let v = self.run(&["status", "--json"]);
        if v.code != 0 {
            return false;
        }
        v.json()["devices"]
            .as_array()
            .map(|a| a.iter().any(|d| d["id"] == peer && d["connected"] == true))
            .unwrap_or(false)
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Two devices, "alpha" and "beta", that trust each other: (alpha, beta, alpha's ID,
/// beta's ID). Nothing is shared and nothing runs yet.
pub fn trusted_pair() -> (Device, Device, String, String) {
    let (a, pa) = Device::listening("alpha");
    let (b, pb) = Device::listening("beta");
    let (ida, idb) = (a.id(), b.id());
    a.trust(&idb, pb);
    b.trust(&ida, pa);
    (a, b, ida, idb)
}
