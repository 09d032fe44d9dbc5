//! `shoal folder …`: the folders this device syncs and whom they are shared with.

use super::output::{pad, print_json};
use super::{Context, change_config, parse_device_id};
use crate::config::change::{create_folder_root, normalize_folder_path};
use crate::config::{ConfigChange, FolderMode, random_folder_id};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum FolderCommand {
    /// Add a folder (PATH is created where missing) and print its folder ID
    #[command(
        long_about = "Add a folder and print its folder ID. PATH is created where missing, \
and a `.shoal/` marker directory is made at its root: a folder whose marker vanishes (an \
unmounted disk) stops instead of propagating deletions. Refuses a PATH inside another folder, \
one that holds another folder, and one that holds this device's home."
    )]
    Add {
        /// The folder's path
        path: PathBuf,
        /// The folder ID, the same on every device that shares it (default: random xxxxx-xxxxx)
        #[arg(long)]
        id: Option<String>,
        /// A human name (default: the directory's name)
        #[arg(long)]
        label: Option<String>,
        /// send-receive (default), send-only or receive-only
        #[arg(long, default_value = "send-receive")]
        mode: FolderMode,
        /// Share it with this trusted device (repeatable)
        #[arg(long = "share", value_name = "DEVICE_ID")]
        share: Vec<String>,
    },
    /// Share a folder with a trusted device
    Share {
        folder_id: String,
        device_id: String,
    },
    /// Stop sharing a folder with a device
    Unshare {
        folder_id: String,
        device_id: String,
    },
    /// Stop syncing a folder (deletes no file)
    Rm { folder_id: String },
    /// List folders
    Ls(LsArgs),
    /// Change a folder's mode: send-receive, send-only or receive-only
    Mode { folder_id: String, mode: FolderMode },
    /// Throw away a receive-only folder's local changes (kept in .shoal/versions/)
    #[command(
        long_about = "Make a receive-only folder what its peers have again. Every file added or \
changed here is first moved into FOLDER/.shoal/versions/ (whatever the folder's versioning), an \
added directory is removed once empty, and the peers' versions are pulled (deleted files come \
back). `shoal ls FOLDER_ID --local-changes` lists what would be reverted."
    )]
    Revert {
        folder_id: String,
        /// One JSON document on stdout: {"reverted", "kept": [{"name", "moved_to"}], "left", "failed"}
        #[arg(long)]
        json: bool,
    },
    /// Keep files that a peer's change replaces or deletes: off, trash DAYS, simple KEEP
    #[command(
        long_about = "What happens to a file that a peer's change replaces or deletes: \
gone (`off`, the default), kept in FOLDER/.shoal/versions/ for DAYS days (`trash DAYS`), or \
the last KEEP versions of each file kept there (`simple KEEP`). Versions stay on this device."
    )]
    Versioning {
        folder_id: String,
        /// off, trash or simple
        kind: String,
        /// DAYS for trash, KEEP for simple
        value: Option<u32>,
    },
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// One JSON array on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct FolderJson {
    id: String,
    label: String,
    path: String,
    mode: String,
    devices: Vec<String>,
    paused: bool,
}

pub fn run(ctx: &Context, cmd: FolderCommand) -> anyhow::Result<()> {
    match cmd {
        FolderCommand::Add {
            path,
            id,
            label,
            mode,
            share,
        } => {
            let devices = share
                .iter()
                .map(|s| parse_device_id(s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let path = normalize_folder_path(&path)?;
            if path.exists() && !path.is_dir() {
                anyhow::bail!(
                    "{path:?} exists and is not a directory; a folder must be a directory"
                );
            }
            let id = id.unwrap_or_else(random_folder_id);
            let label = label.unwrap_or_else(|| {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| id.clone())
            });
            let change = ConfigChange::AddFolder {
                id: id.clone(),
                label,
                path: path.clone(),
                mode,
                devices,
            };
            // Check the change before touching the disk, so a refused folder creates nothing.
            {
                let local = ctx.local_id()?;
                let mut probe = ctx.config()?;
                change.apply(&mut probe, &local, &ctx.home.dirs_canonical())?;
            }
            create_folder_root(&path)?;
            change_config(ctx, change)?;
            println!("{id}");
            Ok(())
        }
        FolderCommand::Share {
            folder_id,
            device_id,
        } => {
            let device = parse_device_id(&device_id)?;
            change_config(
                ctx,
                ConfigChange::ShareFolder {
                    folder: folder_id,
                    device,
                },
            )?;
            Ok(())
        }
        FolderCommand::Unshare {
            folder_id,
            device_id,
        } => {
            let device = parse_device_id(&device_id)?;
            change_config(
                ctx,
                ConfigChange::UnshareFolder {
                    folder: folder_id,
                    device,
                },
            )?;
            Ok(())
        }
        FolderCommand::Rm { folder_id } => {
            change_config(
                ctx,
                ConfigChange::RemoveFolder {
                    folder: folder_id.clone(),
                },
            )?;
            super::index::forget_folder(ctx, &folder_id)?;
            Ok(())
        }
        FolderCommand::Mode { folder_id, mode } => {
            change_config(
                ctx,
                ConfigChange::SetFolderMode {
                    folder: folder_id,
                    mode,
                },
            )?;
            Ok(())
        }
        FolderCommand::Revert { folder_id, json } => revert(ctx, &folder_id, json),
        FolderCommand::Versioning {
            folder_id,
            kind,
            value,
        } => {
            use crate::config::Versioning;
            let versioning = match (kind.as_str(), value) {
                ("off", None) => Versioning::Off,
                ("trash", Some(days)) if days > 0 => Versioning::Trash { days },
                ("simple", Some(keep)) if keep > 0 => Versioning::Simple { keep },
                _ => anyhow::bail!(
                    "versioning is `off`, `trash DAYS` or `simple KEEP` (DAYS and KEEP at least 1), not \"{kind}{}\"",
                    value.map(|v| format!(" {v}")).unwrap_or_default()
                ),
            };
            change_config(
                ctx,
                ConfigChange::SetVersioning {
                    folder: folder_id,
                    versioning,
                },
            )?;
            Ok(())
        }
        FolderCommand::Ls(args) => {
            let config = ctx.config()?;
            let list: Vec<FolderJson> = config
                .folders
                .iter()
                .map(|f| FolderJson {
                    id: f.id.clone(),
                    label: f.label.clone(),
                    path: f.path.to_string_lossy().into_owned(),
                    mode: f.mode.to_string(),
                    devices: f.devices.iter().map(ToString::to_string).collect(),
                    paused: f.paused,
                })
                .collect();
            if args.json {
                return print_json(&list);
            }
            if list.is_empty() {
                eprintln!("no folders; add one with `shoal folder add PATH`");
            }
            for f in &list {
                let shared = if f.devices.is_empty() {
                    "not shared".to_string()
                } else {
                    format!(
                        "shared with {}",
                        config
                            .folders
                            .iter()
                            .find(|c| c.id == f.id)
                            .map(|c| c
                                .devices
                                .iter()
                                .map(|d| config
                                    .device(d)
                                    .map(|x| x.name.clone())
                                    .unwrap_or_else(|| d.short_str()))
                                .collect::<Vec<_>>()
                                .join(", "))
                            .unwrap_or_default()
                    )
                };
                println!(
                    "{}  {}  {}  {}  {}",
                    pad(&f.id, 12),
                    pad(&f.label, 16),
                    pad(&f.mode, 12),
                    f.path,
                    shared
                );
            }
            Ok(())
        }
    }
}

/// `folder revert`: through the running service (which then pulls the peers' versions), or
/// on the home directly (they are pulled when the service next runs).
fn revert(ctx: &Context, folder_id: &str, json: bool) -> anyhow::Result<()> {
    let done = match ctx.target()? {
        super::Target::Service(mut client) => {
            client.call(&crate::service::api::Request::Revert {
                folder: folder_id.to_string(),
            })?
        }
        super::Target::Direct(_lock) => {
            let config = ctx.config()?;
            let folder = config.require_folder(folder_id)?;
            let db = super::index::open_db(ctx)?;
            let caps = crate::sync::names::probe(&folder.path)
                .unwrap_or(crate::sync::names::FsCaps::ASSUMED);
            crate::indexer::index_folder(&db, folder, caps, None, &|_| {}, None)?;
            let report = crate::sync::receive_only::revert(&db, folder, ctx.local_id()?.short())?;
            db.checkpoint()?;
            crate::sync::receive_only::report_json(&report)
        }
    };
    if json {
        return print_json(&done);
    }
    let list = |key: &str| done[key].as_array().cloned().unwrap_or_default();
    for k in list("kept") {
        println!(
            "kept   {} -> {}",
            k["name"].as_str().unwrap_or_default(),
            k["moved_to"].as_str().unwrap_or_default()
        );
    }
    for l in list("left") {
        println!("left   {} (not empty)", l.as_str().unwrap_or_default());
    }
    for f in list("failed") {
        eprintln!(
            "warning: cannot revert {}: {}",
            f["name"].as_str().unwrap_or_default(),
            f["error"].as_str().unwrap_or_default()
        );
    }
    println!(
        "{folder_id}: {} local change(s) reverted; the peers' versions are pulled{}",
        list("reverted").len(),
        if ctx.service().is_some() {
            ""
        } else {
            " when the service runs"
        }
    );
    if !list("failed").is_empty() {
        anyhow::bail!(
            "{} local change(s) could not be reverted (see the warnings)",
            list("failed").len()
        );
    }
    Ok(())
}
