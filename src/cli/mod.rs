//! The command line: one file per subcommand. Commands act on the home directly while no
//! service runs there, and go through the service's control socket while one does.
//!
//! This is the binary's edge: errors are `anyhow` here, printed by `main` as one
//! `error: …` line with the cause chain.

mod device;
mod folder;
mod index;
mod init;
mod output;
mod pending;
mod status;

use crate::config::{Config, Home, HomeLock, LockState};
use crate::identity::{DeviceId, Identity};
use crate::service::api::Request;
use crate::service::socket::Client;
use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const ABOUT: &str = "Peer-to-peer folder sync for the terminal.";
const LONG_ABOUT: &str = "\
Peer-to-peer folder sync for the terminal.

Devices that trust each other by device ID keep folders identical over TLS, with no
server in between. Each device has a home (--home DIR or SHOAL_HOME, else the XDG config
and state directories) holding its identity, config and index.

Getting started:
  shoal init --name laptop            make this device's identity; prints its ID
  shoal folder add ~/Sync             add a folder (prints its folder ID)
  shoal device add ID --addr HOST:PORT
                                      trust another device (its `shoal id`)
  shoal folder share FOLDER_ID ID     share the folder with it
  shoal rescan                        index the folders now
  shoal ls FOLDER_ID                  what the index holds";

#[derive(Debug, Parser)]
#[command(name = "shoal", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The device's home directory (config, identity, index, socket)
    #[arg(long, global = true, env = "SHOAL_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Log more on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this device's home, identity and config (where missing) and print its ID
    #[command(
        long_about = "Create this device's home, identity (a self-signed certificate and key) and \
config where missing, and print the device ID as the only line on stdout. On an existing home the \
identity is kept and the same ID printed; --name and --listen then update the config."
    )]
    Init(init::InitArgs),
    /// Print this device's ID
    Id,
    /// Trust, list, change and forget other devices
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Add, share, list and remove synced folders
    #[command(subcommand)]
    Folder(folder::FolderCommand),
    /// Scan folders now and return when done (every folder without an ID)
    Rescan(index::RescanArgs),
    /// List a folder as the local index holds it
    Ls(index::LsArgs),
    /// This device, its folders and devices
    Status(status::StatusArgs),
    /// Conflict copies the index knows of (every folder without an ID)
    Conflicts(index::ConflictsArgs),
    /// Run the service in the foreground: listen, connect to trusted devices, scan, sync
    #[command(
        long_about = "Run the headless service in the foreground: listen on the configured \
addresses, connect to trusted devices, scan and sync folders, answer the control socket in the \
home. Logs go to stderr (-v for more). SIGINT or SIGTERM stops it cleanly within 5 s. A home \
with no identity yet is initialised first (its device ID is logged)."
    )]
    Serve,
    /// The dashboard: a live view and control of this home's service
    #[command(
        long_about = "Open the terminal dashboard: this device, its folders and devices, what is \
pending, and the service's events, live. It attaches to the service running on this home; where \
none runs, it runs one inside its own process for as long as it is open (and says so in its \
header). A home with no identity yet is initialised first. Logs go to shoal.log in the home. \
Press ? for the keys, q to quit."
    )]
    Tui,
    /// Devices that knocked and folders that trusted devices offered
    Pending(pending::PendingArgs),
    /// Trust a pending device, or add a folder a trusted device offered
    #[command(subcommand)]
    Accept(pending::AcceptCommand),
    /// Drop an entry from `pending` without trusting or adding it
    #[command(subcommand)]
    Dismiss(pending::DismissCommand),
    /// Print shell completions (bash, zsh, fish, …) on stdout
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

/// What every command gets: where the home is and how loud to be.
pub struct Context {
    pub home: Home,
}

impl Context {
    /// The identity of an initialised home.
    pub fn identity(&self) -> anyhow::Result<Identity> {
        Ok(Identity::load(&self.home.config_dir)?)
    }

    pub fn local_id(&self) -> anyhow::Result<DeviceId> {
        Ok(self.identity()?.id)
    }

    /// The config, validated.
    pub fn config(&self) -> anyhow::Result<Config> {
        let local = self.local_id()?;
        Ok(Config::load(&self.home, Some(&local))?)
    }

    /// Who acts on the home for a change: this process (holding the home lock) when no
    /// service runs, else the running service through its control socket. Another
    /// command holding the lock for a moment is waited for.
    pub fn target(&self) -> anyhow::Result<Target> {
        if !self.home.exists() {
            bail!(
                "no Shoal home at {:?}: run `shoal init` first (or pass the right --home)",
                self.home.config_dir
            );
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match HomeLock::try_acquire(&self.home)? {
                LockState::Acquired(lock) => return Ok(Target::Direct(lock)),
                LockState::Held { pid: Some(pid) } => {
                    let client = Client::connect(&self.home.socket_path()).with_context(|| {
                        format!("a shoal service (pid {pid}) holds this home but does not answer")
                    })?;
                    return Ok(Target::Service(client));
                }
                LockState::Held { pid: None } if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                LockState::Held { pid: None } => bail!(
                    "the home {:?} is busy with another shoal command; try again",
                    self.home.state_dir
                ),
            }
        }
    }

    /// The running service, if one runs on this home (for read-only questions).
    pub fn service(&self) -> Option<Client> {
        match HomeLock::try_acquire(&self.home).ok()? {
            LockState::Held { pid: Some(_) } => Client::connect(&self.home.socket_path()).ok(),
            _ => None,
        }
    }
}

/// Where a command's change goes.
pub enum Target {
    Direct(HomeLock),
    Service(Client),
}

/// Runs one command. `Ok` is exit code 0.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let home = Home::resolve(cli.global.home.as_deref())?;
    let ctx = Context { home };
    match cli.command {
        Command::Init(args) => init::run(&ctx, args),
        Command::Id => {
            let id = ctx
                .local_id()
                .context("cannot read this device's identity")?;
            println!("{id}");
            Ok(())
        }
        Command::Device(cmd) => device::run(&ctx, cmd),
        Command::Folder(cmd) => folder::run(&ctx, cmd),
        Command::Rescan(args) => index::rescan(&ctx, args),
        Command::Ls(args) => index::ls(&ctx, args),
        Command::Status(args) => status::run(&ctx, args),
        Command::Conflicts(args) => index::conflicts(&ctx, args),
        Command::Serve => {
            if !ctx.home.exists() {
                ctx.home.create()?;
                let identity = Identity::load_or_create(&ctx.home.config_dir)?;
                let config = Config::new(crate::config::default_device_name());
                config.save(&ctx.home)?;
                tracing::info!(device = %identity.id, "new home initialised");
            }
            crate::service::serve_forever(ctx.home)?;
            Ok(())
        }
        Command::Tui => Ok(crate::tui::run(ctx.home)?),
        Command::Pending(args) => pending::list(&ctx, args),
        Command::Accept(cmd) => pending::accept(&ctx, cmd),
        Command::Dismiss(cmd) => pending::dismiss(&ctx, cmd),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "shoal", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Parses a device ID argument, naming the argument in the error.
pub fn parse_device_id(s: &str) -> anyhow::Result<DeviceId> {
    s.parse::<DeviceId>()
        .with_context(|| format!("\"{s}\" is not a valid device ID"))
}

/// Logs go to stderr; commands stay quiet below warnings unless asked with `-v`.
pub fn init_logging(verbose: u8, service: bool) {
    let level = match verbose {
        0 if service => "info",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Applies a config change: directly (under the home lock) when no service runs, through
/// the service while one does (it saves the config and acts on the change at once).
pub fn change_config(ctx: &Context, change: crate::config::ConfigChange) -> anyhow::Result<()> {
    match ctx.target()? {
        Target::Direct(_lock) => {
            let local = ctx.local_id()?;
            let mut config = ctx.config()?;
            let released = crate::service::leaves_receive_only(&config, &change);
            change.apply(&mut config, &local, &ctx.home.dirs_canonical())?;
            if let crate::config::ConfigChange::AddFolder { path, .. } = &change {
                crate::config::change::create_folder_root(path)?;
            }
            config.save(&ctx.home)?;
            if let crate::config::ConfigChange::RemoveFolder { folder } = &change {
                index::forget_folder(ctx, folder)?;
            }
            if let Some(folder) = released.and_then(|id| config.folder(&id).cloned())
                && ctx.home.db_path().exists()
            {
                // The local changes held back go out when the service next runs.
                let db = index::open_db(ctx)?;
                crate::sync::receive_only::release(&db, &folder)?;
            }
            Ok(())
        }
        Target::Service(mut client) => {
            client.call(&Request::Change { change })?;
            Ok(())
        }
    }
}
