//! The `shoal` binary: parse arguments, run, print `error: …` and set the exit code.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: the service runs dozens of threads (tokio workers,
/// blocking pool, rayon, the index writer), and glibc gives each its own arena that keeps
/// freed memory. Measured with `bench/scale.py` (200,000 files, two devices exchanging
/// indexes): glibc grew to 357 MiB of anonymous memory while the live heap peaked near
/// 73 MiB (heaptrack at 100,000 files); see bench/notes.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Whatever goes wrong, the user sees one `error:` line, not a panic message.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error (a bug in shoal, please report it): {info}");
    }));
    let cli = shoal::cli::Cli::parse();
    let service = matches!(cli.command, shoal::cli::Command::Serve);
    if matches!(cli.command, shoal::cli::Command::Tui) {
        // The dashboard owns the terminal: its logs go to a file in the home.
        shoal::tui::init_logging(cli.global.home.as_deref(), cli.global.verbose);
    } else {
        shoal::cli::init_logging(cli.global.verbose, service);
    }
    match shoal::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
