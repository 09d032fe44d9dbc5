//! Every change a command can make to the config, as a value.
//!
//! A command builds a [`ConfigChange`]; with no service running it applies it to the file
//! itself (under the home lock), and while a service runs it sends the same value over
//! the control socket so that the service, the only writer of `config.toml` then, applies
//! it and acts on it at once. One `apply` serves both paths, so their rules cannot drift.

use super::{
    Config, ConfigError, DeviceConfig, FolderConfig, FolderMode, Versioning, invalid,
    validate_dial_addr, validate_folder_id, validate_listen_addr,
};
use crate::identity::DeviceId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The name of the marker directory at every folder root.
pub const MARKER_DIR: &str = ".shoal";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ConfigChange {
    SetLocal {
        name: Option<String>,
        listen: Option<Vec<String>>,
    },
    AddDevice {
        id: DeviceId,
        name: Option<String>,
        addresses: Vec<String>,
    },
    SetDevice {
        id: DeviceId,
        name: Option<String>,
        addresses: Option<Vec<String>>,
    },
    RemoveDevice {
        id: DeviceId,
    },
    AddFolder {
        id: String,
        label: String,
        path: PathBuf,
        mode: FolderMode,
        devices: Vec<DeviceId>,
    },
    ShareFolder {
        folder: String,
        device: DeviceId,
    },
    UnshareFolder {
        folder: String,
        device: DeviceId,
    },
    RemoveFolder {
        folder: String,
    },
    SetFolderMode {
        folder: String,
        mode: FolderMode,
    },
    SetVersioning {
        folder: String,
        versioning: Versioning,
    },
    PauseFolder {
        folder: String,
        paused: bool,
    },
    PauseDevice {
        id: DeviceId,
        paused: bool,
    },
}

impl ConfigChange {
    /// Applies the change to `config` and validates the result; on error `config` is left
    /// as it was. `local` is this device's ID, `home_dirs` the home's directories.
    pub fn apply(
        &self,
        config: &mut Config,
        local: &DeviceId,
        home_dirs: &[PathBuf],
    ) -> Result<(), ConfigError> {
        let mut next = config.clone();
        self.apply_unchecked(&mut next, local)?;
        next.validate(Some(local), home_dirs)?;
        *config = next;
        Ok(())
    }

    fn apply_unchecked(&self, c: &mut Config, local: &DeviceId) -> Result<(), ConfigError> {
        match self {
            ConfigChange::SetLocal { name, listen } => {
                if let Some(name) = name {
                    c.device.name = name.clone();
                }
                if let Some(listen) = listen {
                    for a in listen {
                        validate_listen_addr(a)?;
                    }
                    c.device.listen = listen.clone();
                }
            }
            ConfigChange::AddDevice {
                id,
                name,
                addresses,
            } => {
                if id == local {
                    return Err(invalid(format!(
                        "{id} is this device's own ID; add the ID that `shoal id` prints on the other device"
                    )));
                }
                if c.device(id).is_some() {
                    return Err(invalid(format!(
                        "device {id} is already trusted; use `shoal device set {id}` to change its name or addresses"
                    )));
                }
                for a in addresses {
                    validate_dial_addr(a)?;
                }
                c.devices.push(DeviceConfig {
                    id: *id,
                    name: name.clone().unwrap_or_else(|| id.short_str()),
                    addresses: addresses.clone(),
                    paused: false,
                });
            }
            ConfigChange::SetDevice {
                id,
                name,
                addresses,
            } => {
                let d = c.require_device_mut(id)?;
                if let Some(name) = name {
                    d.name = name.clone();
                }
                if let Some(addresses) = addresses {
                    for a in addresses {
                        validate_dial_addr(a)?;
                    }
                    d.addresses = addresses.clone();
                }
            }
            ConfigChange::RemoveDevice { id } => {
                c.require_device(id)?;
                c.devices.retain(|d| d.id != *id);
                for f in &mut c.folders {
                    f.devices.retain(|d| d != id);
                }
            }
            ConfigChange::AddFolder {
                id,
                label,
                path,
                mode,
                devices,
            } => {
                validate_folder_id(id)?;
                if c.folder(id).is_some() {
                    return Err(invalid(format!(
                        "folder ID \"{id}\" is already used; pick another --id or leave it out for a random one"
                    )));
                }
                for d in devices {
                    c.require_device(d)?;
                }
                c.folders.push(FolderConfig {
                    id: id.clone(),
                    label: label.clone(),
                    path: path.clone(),
                    mode: *mode,
                    devices: devices.clone(),
                    paused: false,
                    ignore_perms: false,
                    versioning: Versioning::Off,
                    rescan_interval_secs: super::DEFAULT_RESCAN_INTERVAL_SECS,
                });
            }
            ConfigChange::ShareFolder { folder, device } => {
                c.require_device(device)?;
                let f = c.require_folder_mut(folder)?;
                if f.devices.contains(device) {
                    return Err(invalid(format!(
                        "folder \"{folder}\" is already shared with {device}"
                    )));
                }
                f.devices.push(*device);
            }
            ConfigChange::UnshareFolder { folder, device } => {
                c.require_device(device)?;
                let f = c.require_folder_mut(folder)?;
                if !f.devices.contains(device) {
                    return Err(invalid(format!(
                        "folder \"{folder}\" is not shared with {device}"
                    )));
                }
                f.devices.retain(|d| d != device);
            }
            ConfigChange::RemoveFolder { folder } => {
                c.require_folder(folder)?;
                c.folders.retain(|f| f.id != *folder);
            }
            ConfigChange::SetFolderMode { folder, mode } => {
                c.require_folder_mut(folder)?.mode = *mode;
            }
            ConfigChange::SetVersioning { folder, versioning } => {
                c.require_folder_mut(folder)?.versioning = *versioning;
            }
            ConfigChange::PauseFolder { folder, paused } => {
                c.require_folder_mut(folder)?.paused = *paused;
            }
            ConfigChange::PauseDevice { id, paused } => {
                c.require_device_mut(id)?.paused = *paused;
            }
        }
        Ok(())
    }
}

/// Makes a folder's root (where missing) and its `.shoal/` marker. Run after the config
/// change that adds the folder was accepted, so a refused folder leaves nothing behind
/// but a directory the user asked for.
pub fn create_folder_root(path: &Path) -> Result<(), ConfigError> {
    let err = |source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    let marker = path.join(MARKER_DIR);
    match std::fs::create_dir(&marker) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && marker.is_dir() => {}
        Err(source) => {
            return Err(ConfigError::Write {
                path: marker,
                source,
            });
        }
    }
    Ok(())
}

/// The absolute, canonical form a folder path is stored in (symlinks in it resolved, so
/// nesting checks compare real locations). The path need not exist yet: its longest
/// existing ancestor is canonicalised and the rest appended.
pub fn normalize_folder_path(path: &Path) -> Result<PathBuf, ConfigError> {
    let abs = super::home::absolute(path);
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(mut c) => {
                for part in rest.iter().rev() {
                    c.push(part);
                }
                return Ok(c);
            }
            Err(_) => {
                let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                    return Ok(abs.clone());
                };
                if name == ".." || name == "." {
                    return Err(invalid(format!("cannot resolve folder path {path:?}")));
                }
                rest.push(name.to_os_string());
                existing = parent;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 32])
    }

    #[test]
    fn refused_change_leaves_config_untouched() {
        let local = dev(0);
        let mut c = Config::new("x".into());
        ConfigChange::AddDevice {
            id: dev(1),
            name: None,
            addresses: vec![],
        }
        .apply(&mut c, &local, &[])
        .expect("add");
        let before = c.clone();
        let twice = ConfigChange::AddDevice {
            id: dev(1),
            name: None,
            addresses: vec![],
        }
        .apply(&mut c, &local, &[]);
        assert!(
            twice
                .expect_err("twice")
                .to_string()
                .contains("already trusted")
        );
        let share_unknown = ConfigChange::AddFolder {
            id: "f".into(),
            label: String::new(),
            path: "/f".into(),
            mode: FolderMode::SendReceive,
            devices: vec![dev(2)],
        }
        .apply(&mut c, &local, &[]);
        assert!(share_unknown.is_err());
        assert_eq!(c, before);
    }

    #[test]
    fn removing_a_device_unshares_it_everywhere() {
        let local = dev(0);
        let mut c = Config::new("x".into());
        for change in [
            ConfigChange::AddDevice {
                id: dev(1),
                name: Some("a".into()),
                addresses: vec![],
            },
            ConfigChange::AddFolder {
                id: "f".into(),
                label: "F".into(),
                path: "/f".into(),
                mode: FolderMode::SendReceive,
                devices: vec![dev(1)],
            },
            ConfigChange::RemoveDevice { id: dev(1) },
        ] {
            change.apply(&mut c, &local, &[]).expect("apply");
        }
        assert!(c.folders[0].devices.is_empty());
    }

    #[test]
    fn folder_path_normalizes_missing_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = normalize_folder_path(&dir.path().join("a/b")).expect("norm");
        assert_eq!(p, dir.path().canonicalize().expect("c").join("a/b"));
    }
}
