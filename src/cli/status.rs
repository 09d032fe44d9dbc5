//! `shoal status`: this device, its folders and devices.
//!
//! With no service running the answer comes from the config and the index, with every
//! device disconnected and `service_running` false.

use super::Context;
use super::index::{human_bytes, open_reader};
use super::output::{pad, print_json};
use crate::indexer::check_marker;
use clap::Args;
use serde::Serialize;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON document on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, serde::Deserialize)]
pub struct StatusJson {
    pub device_id: String,
    pub name: String,
    pub service_running: bool,
    pub folders: Vec<FolderStatus>,
    pub devices: Vec<DeviceStatus>,
}

#[derive(Serialize, serde::Deserialize)]
pub struct FolderStatus {
    pub id: String,
    pub label: String,
    pub path: String,
    pub state: String,
    pub error: Option<String>,
    pub local_files: u64,
    pub local_bytes: u64,
    pub need_files: u64,
    pub need_bytes: u64,
    /// How the folder's file system compares names (the running service probes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system: Option<serde_json::Value>,
    /// A peer's names that are another spelling of a local name here (never written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name_clashes: Vec<NameClash>,
    /// A receive-only folder's changes made here and not sent (`ls --local-changes`).
    #[serde(default)]
    pub local_changes: u64,
    /// Files whose last pull failed, with the reason (only from a running service).
    #[serde(default)]
    pub pull_errors: Vec<PullError>,
}

#[derive(Serialize, serde::Deserialize)]
pub struct NameClash {
    pub name: String,
    pub local: String,
}

#[derive(Serialize, serde::Deserialize)]
pub struct PullError {
    pub name: String,
    pub error: String,
}

#[derive(Serialize, serde::Deserialize)]
pub struct DeviceStatus {
    pub id: String,
    pub name: String,
    pub connected: bool,
    pub address: Option<String>,
    pub in_bytes_total: u64,
    pub out_bytes_total: u64,
}

pub fn run(ctx: &Context, args: StatusArgs) -> anyhow::Result<()> {
    let local = ctx.local_id()?;
    if let Some(mut client) = ctx.service() {
        let v = client.call(&crate::service::api::Request::Status)?;
        if args.json {
            return print_json(&v);
        }
        let status: StatusJson = serde_json::from_value(v)?;
        print_human(&status);
        return Ok(());
    }
    let config = ctx.config()?;
    let reader = open_reader(ctx)?;
    let mut folders = Vec::new();
    for f in &config.folders {
        let (local_files, local_bytes) = reader.local_counts(&f.id)?;
        let (state, error) = match check_marker(f) {
            Err(e) => ("error", Some(e.to_string())),
            Ok(()) if f.paused => ("paused", None),
            Ok(()) => ("idle", None),
        };
        folders.push(FolderStatus {
            id: f.id.clone(),
            label: f.label.clone(),
            path: f.path.to_string_lossy().into_owned(),
            state: state.to_string(),
            error,
            local_files,
            local_bytes,
            need_files: 0,
            need_bytes: 0,
            file_system: None,
            name_clashes: Vec::new(),
            local_changes: crate::sync::receive_only::count(&reader, f),
            pull_errors: Vec::new(),
        });
    }
    let devices = config
        .devices
        .iter()
        .map(|d| DeviceStatus {
            id: d.id.to_string(),
            name: d.name.clone(),
            connected: false,
            address: None,
            in_bytes_total: 0,
            out_bytes_total: 0,
        })
        .collect();
    let status = StatusJson {
        device_id: local.to_string(),
        name: config.device.name.clone(),
        service_running: false,
        folders,
        devices,
    };
    if args.json {
        return print_json(&status);
    }
    print_human(&status);
    Ok(())
}

fn print_human(status: &StatusJson) {
    println!("device  {} ({})", status.device_id, status.name);
    if status.service_running {
        println!("service running");
    } else {
        println!("service not running");
    }
    for f in &status.folders {
        println!(
            "folder  {}  {}  {} files, {}  {}",
            pad(&f.id, 12),
            pad(&f.state, 8),
            f.local_files,
            human_bytes(f.local_bytes),
            f.path
        );
        if let Some(e) = &f.error {
            println!("        {e}");
        }
        const CLASHES_SHOWN: usize = 10;
        for c in f.name_clashes.iter().take(CLASHES_SHOWN) {
            println!(
                "        name clash: {:?} from a peer is {:?} here",
                c.name, c.local
            );
        }
        if f.name_clashes.len() > CLASHES_SHOWN {
            println!(
                "        … and {} more name clashes",
                f.name_clashes.len() - CLASHES_SHOWN
            );
        }
        if f.local_changes > 0 {
            println!(
                "        {} local change(s) not sent (receive-only): `shoal ls {} --local-changes`, \
                 `shoal folder revert {}`",
                f.local_changes, f.id, f.id
            );
        }
    }
    for d in &status.devices {
        println!(
            "device  {}  {}  {}",
            &d.id[..7],
            pad(&d.name, 16),
            if d.connected {
                "connected"
            } else {
                "disconnected"
            }
        );
    }
}
