//! `shoal tui`: the terminal dashboard, a live view and control of this home's service.
//!
//! It attaches to the service running on the home, or starts one inside its own process
//! ([`embedded`]) for as long as it is open; either way it talks to it only through the
//! control socket ([`link`]), so it works the same against a headless `serve`.
//!
//! The parts talk through one queue of [`Action`]s: the input thread (keys, pastes,
//! resizes), the event subscription and the refresh thread all send into it, and the loop
//! here takes them one by one, lets [`update`] change the [`App`], carries out the effects
//! it returns, and redraws with [`render::render`]. Render functions only draw; every
//! user-visible string is in [`text`] and every key binding in [`keys`]. The loop is
//! generic over the ratatui backend, so any frame can be drawn on a `TestBackend`.
//!
//! Logs go to `shoal.log` in the home ([`init_logging`]), never to the terminal.

pub mod app;
pub mod embedded;
pub mod keys;
pub mod link;
pub mod overlays;
pub mod render;
pub mod terminal;
pub mod text;
pub mod update;

#[cfg(test)]
pub(crate) mod sample;
#[cfg(test)]
mod tests;

pub use app::App;
pub use update::{Action, Effect, update};

use crate::config::{Config, Home, HomeLock, LockState};
use crate::identity::Identity;
use crate::service::ServiceError;
use crate::service::socket::{Client, ClientError};
use app::ServiceKind;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{self as ct, KeyEventKind};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Rates are sampled this often (a refresh when nothing else happens).
pub const TICK: Duration = Duration::from_secs(1);
/// Actions handled between two frames at most, so a flood of events cannot starve drawing.
const BATCH: usize = 256;
/// How long a service that holds the home's lock may take to open its socket.
const ATTACH_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("shoal tui needs a terminal: run it in one (stdin and stdout must be a TTY)")]
    NotATerminal,
    #[error("cannot use the terminal: {0}")]
    Terminal(#[from] std::io::Error),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Home(#[from] crate::config::HomeError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(
        "a shoal service (pid {pid}) holds this home but its control socket does not answer: {source}"
    )]
    NoAnswer { pid: u32, source: ClientError },
    #[error("the home {0:?} is busy with another shoal command; try again")]
    Busy(PathBuf),
}

/// Runs the dashboard until the user quits.
pub fn run(home: Home) -> Result<(), TuiError> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(TuiError::NotATerminal);
    }
    let identity = prepare_home(&home)?;
    let (kind, embedded) = attach_or_embed(&home)?;
    info!(?kind, "dashboard starting");
    let (tx, rx) = channel();
    let user_home = std::env::var_os("HOME").map(PathBuf::from);
    let mut app = App::new(kind, identity.id.to_string(), user_home);
    let result = link::Link::start(home.socket_path(), tx.clone())
        .map_err(TuiError::from)
        .and_then(|link| {
            let r = run_terminal(&mut app, &rx, &link, tx);
            drop(link);
            r
        });
    if let Some(e) = embedded {
        eprintln!("{}", text::STOPPING_EMBEDDED);
        e.stop();
    }
    info!("dashboard closed");
    result
}

/// A home that is not initialised is, as `serve` does it.
fn prepare_home(home: &Home) -> Result<Identity, TuiError> {
    if !home.exists() {
        home.create()?;
        let identity = Identity::load_or_create(&home.config_dir)?;
        Config::new(crate::config::default_device_name()).save(home)?;
        info!(device = %identity.id, "new home initialised");
    }
    Ok(Identity::load(&home.config_dir)?)
}

/// Attaches to the home's service, or starts one here when none runs.
fn attach_or_embed(home: &Home) -> Result<(ServiceKind, Option<embedded::Embedded>), TuiError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match HomeLock::try_acquire(home)? {
            LockState::Acquired(lock) => {
                drop(lock);
                match embedded::Embedded::start(home.clone()) {
                    Ok(e) => return Ok((ServiceKind::Embedded, Some(e))),
                    // Someone started a service in between: attach to it next time round.
                    Err(ServiceError::AlreadyRunning { .. }) if Instant::now() < deadline => {}
                    Err(e) => return Err(e.into()),
                }
            }
            LockState::Held { pid: Some(pid) } => {
                wait_for_socket(&home.socket_path(), pid)?;
                return Ok((ServiceKind::Attached { pid: Some(pid) }, None));
            }
            LockState::Held { pid: None } if Instant::now() < deadline => {}
            LockState::Held { pid: None } => return Err(TuiError::Busy(home.state_dir.clone())),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A service that just took the lock opens its socket a moment later.
fn wait_for_socket(socket: &Path, pid: u32) -> Result<(), TuiError> {
    let deadline = Instant::now() + ATTACH_WAIT;
    loop {
        match Client::connect(socket) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(TuiError::NoAnswer { pid, source: e });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn run_terminal(
    app: &mut App,
    rx: &Receiver<Action>,
    link: &link::Link,
    tx: Sender<Action>,
) -> Result<(), TuiError> {
    let mut terminal = terminal::enter()?;
    let result = spawn_input(tx)
        .and_then(|()| run_loop(&mut terminal, app, rx, |e| link.execute(e)))
        .map_err(TuiError::from);
    terminal::restore();
    result
}

/// Reads the terminal's input on its own thread and queues it.
fn spawn_input(tx: Sender<Action>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tui-input".into())
        .spawn(move || {
            loop {
                let action = match ct::read() {
                    Ok(ct::Event::Key(k)) if k.kind != KeyEventKind::Release => Action::Key(k),
                    Ok(ct::Event::Paste(s)) => Action::Paste(s),
                    Ok(ct::Event::Resize(..)) => Action::Resize,
                    Ok(_) => continue,
                    Err(e) => {
                        warn!(error = %e, "terminal input failed");
                        let _ = tx.send(Action::InputClosed);
                        return;
                    }
                };
                if tx.send(action).is_err() {
                    return;
                }
            }
        })
        .map(|_| ())
}

/// The loop: draw, wait for the next action (or the tick), update, carry out effects.
/// Returns when the user quits or every sender is gone.
pub fn run_loop<B: Backend>(
    terminal: &mut ratatui::Terminal<B>,
    app: &mut App,
    rx: &Receiver<Action>,
    mut execute: impl FnMut(Effect),
) -> Result<(), B::Error> {
    let mut next_tick = Instant::now() + TICK;
    app.now = time::OffsetDateTime::now_utc();
    while !app.quit {
        terminal.draw(|f| render::render(app, f))?;
        let wait = next_tick.saturating_duration_since(Instant::now());
        let first = match rx.recv_timeout(wait) {
            Ok(a) => a,
            Err(RecvTimeoutError::Timeout) => {
                next_tick = Instant::now() + TICK;
                Action::Tick
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let rest = std::iter::from_fn(|| rx.try_recv().ok());
        for action in std::iter::once(first).chain(rest).take(BATCH) {
            app.now = time::OffsetDateTime::now_utc();
            for effect in update(app, action) {
                execute(effect);
            }
            if app.quit {
                break;
            }
        }
    }
    Ok(())
}

/// Logging for `shoal tui`: to `shoal.log` in the home, never to the terminal (the
/// dashboard owns it). Without a usable log file nothing is logged.
pub fn init_logging(home: Option<&Path>, verbose: u8) {
    let Ok(home) = Home::resolve(home) else {
        return;
    };
    if home.create().is_err() {
        return;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.log_path())
    else {
        return;
    };
    let level = match verbose {
        0 | 1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
