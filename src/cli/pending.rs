//! `shoal pending`, `accept`, `dismiss`: devices that knocked, folders offered.

use super::output::print_json;
use super::{Context, Target, parse_device_id};
use crate::service::api::Request;
use crate::service::pending::Pending;
use anyhow::bail;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct PendingArgs {
    /// One JSON document on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AcceptCommand {
    /// Trust a device that tried to connect
    Device {
        id: String,
        /// A name for it (default: the name it sent)
        #[arg(long)]
        name: Option<String>,
    },
    /// Add a folder a trusted device offered, shared with every device that offered it
    Folder {
        folder_id: String,
        /// Where to keep it here
        #[arg(long)]
        path: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum DismissCommand {
    /// Forget a pending device
    Device { id: String },
    /// Forget a pending folder offer
    Folder { folder_id: String },
}

pub fn list(ctx: &Context, args: PendingArgs) -> anyhow::Result<()> {
    ctx.local_id()?;
    let pending: Pending = match ctx.service() {
        Some(mut c) => serde_json::from_value(c.call(&Request::Pending)?)?,
        None => Pending::load(&ctx.home.state_dir),
    };
    if args.json {
        return print_json(&pending);
    }
    if pending.devices.is_empty() && pending.folders.is_empty() {
        println!("nothing pending");
    }
    for d in &pending.devices {
        println!(
            "device  {}  {:?} from {} at {}  (shoal accept device {})",
            d.id,
            d.name,
            d.address,
            d.last_seen,
            &d.id[..7]
        );
    }
    for f in &pending.folders {
        println!(
            "folder  {}  {:?} offered by {}  (shoal accept folder {} --path PATH)",
            f.id,
            f.label,
            f.offered_by
                .iter()
                .map(|s| s.chars().take(7).collect::<String>())
                .collect::<Vec<_>>()
                .join(", "),
            f.id
        );
    }
    Ok(())
}

/// Accepting needs a running service: it is the one that saw the knock or the offer, and
/// it acts on the acceptance at once.
pub fn accept(ctx: &Context, cmd: AcceptCommand) -> anyhow::Result<()> {
    match cmd {
        AcceptCommand::Device { id, name } => {
            let id = parse_device_id(&id)?;
            match ctx.target()? {
                Target::Service(mut c) => {
                    c.call(&Request::AcceptDevice {
                        id: id.to_string(),
                        name,
                    })?;
                }
                Target::Direct(lock) => {
                    let pending = Pending::load(&ctx.home.state_dir);
                    let sent = pending
                        .devices
                        .iter()
                        .find(|d| d.id == id.to_string())
                        .map(|d| d.name.clone())
                        .filter(|n| !n.is_empty());
                    drop(lock);
                    super::change_config(
                        ctx,
                        crate::config::ConfigChange::AddDevice {
                            id,
                            name: name.or(sent),
                            addresses: Vec::new(),
                        },
                    )?;
                    let mut p = Pending::load(&ctx.home.state_dir);
                    if p.remove_device(&id) {
                        p.save(&ctx.home.state_dir)?;
                    }
                }
            }
            Ok(())
        }
        AcceptCommand::Folder { folder_id, path } => {
            let path = crate::config::change::normalize_folder_path(&path)?;
            match ctx.target()? {
                Target::Service(mut c) => {
                    let id = c.call(&Request::AcceptFolder {
                        folder: folder_id,
                        path: path.to_string_lossy().into_owned(),
                    })?;
                    println!("{}", id.as_str().unwrap_or_default());
                    Ok(())
                }
                Target::Direct(_) => bail!(
                    "no shoal service runs on this home; start `shoal serve` so it can hear the offer, then accept"
                ),
            }
        }
    }
}

pub fn dismiss(ctx: &Context, cmd: DismissCommand) -> anyhow::Result<()> {
    let req = match &cmd {
        DismissCommand::Device { id } => Request::DismissDevice {
            id: parse_device_id(id)?.to_string(),
        },
        DismissCommand::Folder { folder_id } => Request::DismissFolder {
            folder: folder_id.clone(),
        },
    };
    match ctx.target()? {
        Target::Service(mut c) => {
            c.call(&req)?;
        }
        Target::Direct(_lock) => {
            let mut p = Pending::load(&ctx.home.state_dir);
            let found = match &cmd {
                DismissCommand::Device { id } => p.remove_device(&parse_device_id(id)?),
                DismissCommand::Folder { folder_id } => p.remove_folder(folder_id),
            };
            if !found {
                bail!("nothing pending by that ID; `shoal pending` lists what is");
            }
            p.save(&ctx.home.state_dir)?;
        }
    }
    Ok(())
}
