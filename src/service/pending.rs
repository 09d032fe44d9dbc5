//! Pending devices and folders: who knocked and what trusted devices offered.
//!
//! Kept in `pending.json` in the home's state directory, never in `config.toml` (a stranger
//! knocking must not be able to make the service rewrite its config), bounded to the newest
//! [`MAX_PENDING`] entries of each kind so a flood of strangers cannot grow it without end.

use crate::identity::DeviceId;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MAX_PENDING: usize = 100;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDevice {
    pub id: String,
    pub name: String,
    pub address: String,
    /// RFC 3339.
    pub last_seen: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFolder {
    pub id: String,
    pub label: String,
    pub offered_by: Vec<String>,
}

/// `shoal pending --json`'s document, and the file's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub devices: Vec<PendingDevice>,
    pub folders: Vec<PendingFolder>,
}

impl Pending {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("pending.json")
    }

    /// Reads the file; a missing or unreadable one is an empty list (pending entries are
    /// hints, re-learnt at the next knock, never worth stopping for).
    pub fn load(state_dir: &Path) -> Self {
        std::fs::read(Self::path(state_dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let path = Self::path(state_dir);
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    /// Records a device that connected without being trusted (newest first).
    pub fn add_device(&mut self, id: &DeviceId, name: &str, address: &str, now: &str) {
        let id = id.to_string();
        self.devices.retain(|d| d.id != id);
        self.devices.insert(
            0,
            PendingDevice {
                id,
                name: name.to_string(),
                address: address.to_string(),
                last_seen: now.to_string(),
            },
        );
        self.devices.truncate(MAX_PENDING);
    }

    /// Records a folder a trusted device offered; returns true when it is new.
    pub fn add_folder(&mut self, id: &str, label: &str, by: &DeviceId) -> bool {
        let by = by.to_string();
        if let Some(f) = self.folders.iter_mut().find(|f| f.id == id) {
            f.label = label.to_string();
            if f.offered_by.contains(&by) {
                return false;
            }
            f.offered_by.push(by);
            return true;
        }
        self.folders.insert(
            0,
            PendingFolder {
                id: id.to_string(),
                label: label.to_string(),
                offered_by: vec![by],
            },
        );
        self.folders.truncate(MAX_PENDING);
        true
    }

    pub fn remove_device(&mut self, id: &DeviceId) -> bool {
        let id = id.to_string();
        let before = self.devices.len();
        self.devices.retain(|d| d.id != id);
        before != self.devices.len()
    }

    pub fn remove_folder(&mut self, id: &str) -> bool {
        let before = self.folders.len();
        self.folders.retain(|f| f.id != id);
        before != self.folders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_newest_first_and_deduplicated() {
        let mut p = Pending::default();
        for i in 0..150u8 {
            p.add_device(&DeviceId::from_bytes([i; 32]), "x", "127.0.0.1:1", "t");
        }
        assert_eq!(p.devices.len(), MAX_PENDING);
        assert_eq!(p.devices[0].id, DeviceId::from_bytes([149; 32]).to_string());
        p.add_device(&DeviceId::from_bytes([149; 32]), "y", "127.0.0.1:2", "t2");
        assert_eq!(p.devices.len(), MAX_PENDING);
        assert_eq!(p.devices[0].name, "y");
        let a = DeviceId::from_bytes([1; 32]);
        assert!(p.add_folder("f", "F", &a));
        assert!(!p.add_folder("f", "F", &a));
        assert!(p.add_folder("f", "F", &DeviceId::from_bytes([2; 32])));
        assert_eq!(p.folders[0].offered_by.len(), 2);
    }
}
