//! The `shoal` binary: parse arguments, run, print `error: …` and set the exit code.

use clap::Parser;
use std::process::ExitCode;

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
