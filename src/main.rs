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
    if service {
        limit_malloc_arenas();
    }
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

/// The environment variable glibc reads its malloc settings from, and ours.
const TUNABLES: &str = "GLIBC_TUNABLES";
const OUR_TUNABLES: &str = "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=262144";

/// The service runs with two malloc arenas and a fixed mmap threshold (glibc's defaults
/// are up to eight arenas per core and a threshold that grows with the largest block
/// freed). With the defaults, memory freed by the many short-lived threads and SQLite
/// connections of a big index exchange stayed with the process: at 1,000,000 files the
/// peak RSS was about twice the live heap (bench/notes.md §17). glibc reads these settings
/// only at process start, so the service re-executes itself once with them set (same
/// PID, same arguments). A user's own `GLIBC_TUNABLES` or `MALLOC_ARENA_MAX` is left as
/// it is; if the re-execution fails the service runs on with the defaults.
fn limit_malloc_arenas() {
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || std::env::var_os(TUNABLES).is_some()
        || std::env::var_os("MALLOC_ARENA_MAX").is_some()
    {
        return;
    }
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let err = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env(TUNABLES, OUR_TUNABLES)
        .exec();
    // Only returns on failure: carry on with glibc's defaults.
    eprintln!("warning: could not limit malloc arenas ({err}); running with the defaults");
}
