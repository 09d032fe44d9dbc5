//! `shoal init`: the home, the identity and the config.

use super::Context;
use crate::config::{Config, ConfigChange, LockState, validate_listen_addr};
use crate::identity::Identity;
use anyhow::bail;
use clap::Args;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// This device's name, as other devices will show it (default: the host name)
    #[arg(long)]
    name: Option<String>,
    /// Address to listen on, HOST:PORT (repeatable; default 0.0.0.0:22100)
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
}

pub fn run(ctx: &Context, args: InitArgs) -> anyhow::Result<()> {
    for a in &args.listen {
        validate_listen_addr(a)?;
    }
    ctx.home.create()?;
    let identity = Identity::load_or_create(&ctx.home.config_dir)?;
    if !ctx.home.config_path().exists() {
        let _lock = match crate::config::HomeLock::try_acquire(&ctx.home)? {
            LockState::Acquired(l) => l,
            LockState::Held { .. } => {
                bail!("the home is in use by another shoal process; try again")
            }
        };
        let mut config = Config::new(
            args.name
                .clone()
                .unwrap_or_else(crate::config::default_device_name),
        );
        if !args.listen.is_empty() {
            config.device.listen = args.listen.clone();
        }
        config.validate(Some(&identity.id), &ctx.home.dirs_canonical())?;
        config.save(&ctx.home)?;
    } else if args.name.is_some() || !args.listen.is_empty() {
        super::change_config(
            ctx,
            ConfigChange::SetLocal {
                name: args.name,
                listen: (!args.listen.is_empty()).then_some(args.listen),
            },
        )?;
    } else {
        // Refuse to print an ID for a home whose config is broken: say so now.
        ctx.config()?;
    }
    println!("{}", identity.id);
    Ok(())
}
