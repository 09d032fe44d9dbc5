//! `shoal device …`: the devices this one trusts.

use super::output::{pad, print_json};
use super::{Context, change_config, parse_device_id};
use crate::config::ConfigChange;
use clap::{Args, Subcommand};
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Trust a device by its ID (what `shoal id` prints there)
    Add {
        /// The device ID, XXXXXXX-XXXXXXX-… (any case, dashes optional)
        id: String,
        /// A name to show for it (default: its short ID)
        #[arg(long)]
        name: Option<String>,
        /// Where to reach it, HOST:PORT (repeatable; none: found by discovery)
        #[arg(long = "addr", value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Stop trusting a device (it is unshared from every folder)
    Rm {
        /// The device ID
        id: String,
    },
    /// List trusted devices
    Ls(LsArgs),
    /// Rename a trusted device or replace its addresses
    Set {
        /// The device ID
        id: String,
        /// The new name
        #[arg(long)]
        name: Option<String>,
        /// Where to reach it, HOST:PORT (repeatable; replaces the old list)
        #[arg(long = "addr", value_name = "ADDR")]
        addresses: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// One JSON array on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, serde::Deserialize)]
struct DeviceJson {
    id: String,
    name: String,
    addresses: Vec<String>,
    connected: bool,
    paused: bool,
}

pub fn run(ctx: &Context, cmd: DeviceCommand) -> anyhow::Result<()> {
    match cmd {
        DeviceCommand::Add {
            id,
            name,
            addresses,
        } => {
            let id = parse_device_id(&id)?;
            change_config(
                ctx,
                ConfigChange::AddDevice {
                    id,
                    name,
                    addresses,
                },
            )?;
            Ok(())
        }
        DeviceCommand::Rm { id } => {
            let id = parse_device_id(&id)?;
            change_config(ctx, ConfigChange::RemoveDevice { id })?;
            Ok(())
        }
        DeviceCommand::Set {
            id,
            name,
            addresses,
        } => {
            let id = parse_device_id(&id)?;
            if name.is_none() && addresses.is_empty() {
                anyhow::bail!("nothing to change: give --name NAME and/or --addr HOST:PORT");
            }
            change_config(
                ctx,
                ConfigChange::SetDevice {
                    id,
                    name,
                    addresses: (!addresses.is_empty()).then_some(addresses),
                },
            )?;
            Ok(())
        }
        DeviceCommand::Ls(args) => {
            if let Some(mut client) = ctx.service() {
                let v = client.call(&crate::service::api::Request::Devices)?;
                if args.json {
                    return print_json(&v);
                }
                let list: Vec<DeviceJson> = serde_json::from_value(v)?;
                print_devices(&list);
                return Ok(());
            }
            let config = ctx.config()?;
            let list: Vec<DeviceJson> = config
                .devices
                .iter()
                .map(|d| DeviceJson {
                    id: d.id.to_string(),
                    name: d.name.clone(),
                    addresses: d.addresses.clone(),
                    connected: false,
                    paused: d.paused,
                })
                .collect();
            if args.json {
                return print_json(&list);
            }
            print_devices(&list);
            Ok(())
        }
    }
}

fn print_devices(list: &[DeviceJson]) {
    if list.is_empty() {
        eprintln!("no trusted devices; add one with `shoal device add ID`");
    }
    for d in list {
        let addrs = if d.addresses.is_empty() {
            "(discovery)".to_string()
        } else {
            d.addresses.join(", ")
        };
        println!(
            "{}  {}  {}  {}",
            d.id,
            pad(&d.name, 16),
            pad(
                if d.connected {
                    "connected"
                } else {
                    "disconnected"
                },
                12
            ),
            addrs
        );
    }
}
