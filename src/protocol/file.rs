//! A file entry as devices exchange it and as the index stores it.

use super::vector::Vector;
use crate::identity::ShortId;
use std::fmt;

/// BLAKE3 digest of one block's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// The first 8 bytes as a signed integer: the compact key of the block map in the index.
    /// Two different hashes may share it; every use of a block verifies the full hash anyway.
    pub fn prefix_key(&self) -> i64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        i64::from_be_bytes(b)
    }
}

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// One content-defined block of a file. Its offset is the sum of the sizes before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockInfo {
    pub hash: BlockHash,
    pub size: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    File,
    Dir,
    Symlink,
}

impl FileType {
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::File => "file",
            FileType::Dir => "dir",
            FileType::Symlink => "symlink",
        }
    }

    /// The small integer the index and the wire store.
    pub fn code(self) -> u8 {
        match self {
            FileType::File => 0,
            FileType::Dir => 1,
            FileType::Symlink => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(FileType::File),
            1 => Some(FileType::Dir),
            2 => Some(FileType::Symlink),
            _ => None,
        }
    }
}

/// One entry of a folder's index: a file, directory or symlink, or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Relative to the folder root, `/`-separated, Unicode NFC, never empty, never `..`.
    pub name: String,
    pub file_type: FileType,
    /// Bytes for a file; 0 for directories, symlinks and tombstones.
    pub size: u64,
    /// Unix permission bits (`mode & 0o7777`).
    pub permissions: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub modified_ns: i64,
    /// The device that made this version.
    pub modified_by: ShortId,
    /// A tombstone: the file was deleted in this version.
    pub deleted: bool,
    pub version: Vector,
    /// Position in the sending device's per-folder change log; 0 before it is assigned.
    pub sequence: u64,
    /// Content-defined blocks in file order; empty for non-files, tombstones, empty files.
    pub blocks: Vec<BlockInfo>,
    /// Where a symlink points, as stored in the link (never followed); empty otherwise.
    pub symlink_target: String,
}

impl FileInfo {
    /// True when both entries describe the same content and metadata, whatever their
    /// versions: used to tell a real change from a touch that changed nothing we sync.
    pub fn same_contents(&self, other: &FileInfo) -> bool {
        self.file_type == other.file_type
            && self.deleted == other.deleted
            && self.size == other.size
            && self.permissions == other.permissions
            && self.modified_ns == other.modified_ns
            && self.blocks == other.blocks
            && self.symlink_target == other.symlink_target
    }

    /// The hash of the whole block list: the identity of a file's content in the index.
    pub fn blocks_hash(&self) -> BlockHash {
        blocks_hash(&self.blocks)
    }
}

/// BLAKE3 over the concatenated `(hash, size)` pairs of a block list.
pub fn blocks_hash(blocks: &[BlockInfo]) -> BlockHash {
    let mut h = blake3::Hasher::new();
    for b in blocks {
        h.update(&b.hash.0);
        h.update(&b.size.to_le_bytes());
    }
    BlockHash(*h.finalize().as_bytes())
}
