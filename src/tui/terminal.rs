//! The real terminal: raw mode, the alternate screen and bracketed paste on the way in,
//! all undone on the way out, on an error, and by the panic hook before a panic message
//! is printed, so the user's shell is never left in raw mode. It must never be written to
//! by anything but the render loop while the dashboard runs.

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::Show;
use ratatui::crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use std::io::{Stdout, stdout};

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Takes over the terminal; [`restore`] gives it back.
pub fn enter() -> std::io::Result<Term> {
    install_panic_hook();
    enable_raw_mode()?;
    let setup = execute!(stdout(), EnterAlternateScreen, EnableBracketedPaste)
        .and_then(|()| Terminal::new(CrosstermBackend::new(stdout())));
    if setup.is_err() {
        restore();
    }
    setup
}

/// Gives the terminal back as it was. Safe to call more than once.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), DisableBracketedPaste, LeaveAlternateScreen, Show);
}

/// A panic on the dashboard's own thread restores the terminal, then reports as usual.
/// One on another thread (a service task, a socket reader) goes to the log only: the
/// dashboard still owns the screen, and a message printed over it would garble it.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    let ui = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui {
            restore();
            previous(info);
        } else {
            tracing::error!(
                thread = std::thread::current().name().unwrap_or("?"),
                "a background thread panicked: {info}"
            );
        }
    }));
}
