//! A file entry as it travels in an [`Index`](super::Index) message, and its conversion to
//! and from the index's [`FileInfo`].
//!
//! The wire form differs from `FileInfo` in two ways: it carries `invalid` ("don't take
//! this from me"), and its block list may be a delta against a list the receiver holds, or
//! a reference to one (see "Delta block lists" in the module docs).

use super::codec::{Reader, Writer};
use super::diff::{BlockEdit, apply_edits, diff_blocks};
use super::name::validate_name;
use super::{
    INDEX_BATCH_BYTES, MAX_BLOCK_SIZE, MAX_INDEX_EDITS, MAX_INDEX_FILES, MAX_INLINE_BLOCKS,
    MAX_STRING_LEN, MAX_VECTOR_COUNTERS, Message, ProtocolError,
};
use crate::identity::ShortId;
use crate::protocol::file::{BlockHash, BlockInfo, FileInfo, FileType, blocks_hash};
use crate::protocol::vector::{Counter, Vector};

/// One entry of an index batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireFile {
    pub name: String,
    pub file_type: FileType,
    pub size: u64,
    /// Unix permission bits, at most `0o7777`.
    pub permissions: u32,
    pub modified_ns: i64,
    pub modified_by: ShortId,
    pub deleted: bool,
    /// Ignored or unreadable on the sender: the receiver records the version (so it is not
    /// offered back as new) but never pulls this entry's content from this sender.
    pub invalid: bool,
    pub version: Vector,
    /// The sender's per-folder sequence number of this entry; > 0.
    pub sequence: u64,
    pub symlink_target: String,
    pub blocks: WireBlocks,
}

/// How an entry carries its block list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireBlocks {
    /// The whole list, at most [`MAX_INLINE_BLOCKS`] long.
    Full(Vec<BlockInfo>),
    /// The list that `edits` make of the list whose `blocks_hash` is `base`; `result` is
    /// the `blocks_hash` of the list that must come out, checked by the receiver.
    Delta {
        base: BlockHash,
        result: BlockHash,
        edits: Vec<BlockEdit>,
    },
    /// The list whose `blocks_hash` this is: one the receiver is known to hold, or one too
    /// long to send inline, which the receiver fetches with `BlockListRequest`.
    Ref(BlockHash),
}

const TAG_FULL: u8 = 0;
const TAG_DELTA: u8 = 1;
const TAG_REF: u8 = 2;
const FLAG_DELETED: u8 = 1;
const FLAG_INVALID: u8 = 2;

/// Smallest encodings, for checking counts against the bytes left before allocating.
pub(crate) const MIN_BLOCK_LEN: usize = 33;
pub(crate) const MIN_EDIT_LEN: usize = 3;
pub(crate) const MIN_COUNTER_LEN: usize = 9;
pub(crate) const MIN_FILE_LEN: usize = 19;

pub(crate) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn str_len(s: &str) -> usize {
    varint_len(s.len() as u64) + s.len()
}

fn blocks_len(blocks: &[BlockInfo]) -> usize {
    varint_len(blocks.len() as u64)
        + blocks
            .iter()
            .map(|b| 32 + varint_len(u64::from(b.size)))
            .sum::<usize>()
}

pub(crate) fn encode_block(w: &mut Writer<'_>, b: &BlockInfo) -> Result<(), ProtocolError> {
    if b.size == 0 || b.size > MAX_BLOCK_SIZE {
        return Err(w.error(format!(
            "a block of {} bytes (blocks are 1 to {MAX_BLOCK_SIZE} bytes)",
            b.size
        )));
    }
    w.fixed32(&b.hash.0);
    w.varint(u64::from(b.size));
    Ok(())
}

pub(crate) fn decode_block(r: &mut Reader<'_>) -> Result<BlockInfo, ProtocolError> {
    let hash = BlockHash(r.fixed32("block hash")?);
    let size = r.varint_u32("block size")?;
    if size == 0 || size > MAX_BLOCK_SIZE {
        return Err(r.error(format!(
            "a block of {size} bytes (blocks are 1 to {MAX_BLOCK_SIZE} bytes)"
        )));
    }
    Ok(BlockInfo { hash, size })
}

pub(crate) fn encode_blocks(
    w: &mut Writer<'_>,
    field: &'static str,
    blocks: &[BlockInfo],
    max: usize,
) -> Result<(), ProtocolError> {
    w.count(field, blocks.len(), max)?;
    blocks.iter().try_for_each(|b| encode_block(w, b))
}

pub(crate) fn decode_blocks(
    r: &mut Reader<'_>,
    field: &'static str,
    max: usize,
) -> Result<Vec<BlockInfo>, ProtocolError> {
    let n = r.count(field, max, MIN_BLOCK_LEN)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(decode_block(r)?);
    }
    Ok(v)
}

impl WireBlocks {
    /// Blocks this form carries on the wire (the whole list, or the delta's insertions).
    pub fn carried_blocks(&self) -> usize {
        match self {
            WireBlocks::Full(v) => v.len(),
            WireBlocks::Delta { edits, .. } => edits.iter().map(|e| e.insert.len()).sum(),
            WireBlocks::Ref(_) => 0,
        }
    }

    pub fn edit_count(&self) -> usize {
        match self {
            WireBlocks::Delta { edits, .. } => edits.len(),
            _ => 0,
        }
    }

    /// Bytes of this form's encoding.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            WireBlocks::Full(v) => blocks_len(v),
            WireBlocks::Delta { edits, .. } => {
                64 + varint_len(edits.len() as u64)
                    + edits
                        .iter()
                        .map(|e| {
                            varint_len(u64::from(e.at))
                                + varint_len(u64::from(e.remove))
                                + blocks_len(&e.insert)
                        })
                        .sum::<usize>()
            }
            WireBlocks::Ref(_) => 32,
        }
    }

    fn fits(&self) -> bool {
        self.carried_blocks() <= MAX_INLINE_BLOCKS && self.edit_count() <= MAX_INDEX_EDITS
    }

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtocolError> {
        match self {
            WireBlocks::Full(v) => {
                w.u8(TAG_FULL);
                encode_blocks(w, "block list", v, MAX_INLINE_BLOCKS)
            }
            WireBlocks::Delta {
                base,
                result,
                edits,
            } => {
                w.u8(TAG_DELTA);
                w.fixed32(&base.0);
                w.fixed32(&result.0);
                w.count("delta edits", edits.len(), MAX_INDEX_EDITS)?;
                if self.carried_blocks() > MAX_INLINE_BLOCKS {
                    return Err(w.error(format!(
                        "a delta inserts {} blocks, more than the limit of {MAX_INLINE_BLOCKS}",
                        self.carried_blocks()
                    )));
                }
                for e in edits {
                    w.varint(u64::from(e.at));
                    w.varint(u64::from(e.remove));
                    encode_blocks(w, "edit insertion", &e.insert, MAX_INLINE_BLOCKS)?;
                }
                Ok(())
            }
            WireBlocks::Ref(h) => {
                w.u8(TAG_REF);
                w.fixed32(&h.0);
                Ok(())
            }
        }
    }

    /// `edits_left`: how many more edits this message may carry in all.
    fn decode(r: &mut Reader<'_>, edits_left: &mut usize) -> Result<Self, ProtocolError> {
        match r.u8("block list form")? {
            TAG_FULL => Ok(WireBlocks::Full(decode_blocks(
                r,
                "block list",
                MAX_INLINE_BLOCKS,
            )?)),
            TAG_DELTA => {
                let base = BlockHash(r.fixed32("delta base")?);
                let result = BlockHash(r.fixed32("delta result")?);
                let n = r.count("delta edits", *edits_left, MIN_EDIT_LEN)?;
                *edits_left -= n;
                let mut inserted_left = MAX_INLINE_BLOCKS;
                let mut edits = Vec::with_capacity(n);
                for _ in 0..n {
                    let at = r.varint_u32("edit position")?;
                    let remove = r.varint_u32("edit removal count")?;
                    let insert = decode_blocks(r, "edit insertion", inserted_left)?;
                    inserted_left -= insert.len();
                    edits.push(BlockEdit { at, remove, insert });
                }
                Ok(WireBlocks::Delta {
                    base,
                    result,
                    edits,
                })
            }
            TAG_REF => Ok(WireBlocks::Ref(BlockHash(r.fixed32("block list hash")?))),
            t => Err(r.error(format!("block list form {t} is unknown (0, 1 or 2)"))),
        }
    }
}

impl WireFile {
    /// The wire form of one of our entries. With `base` (a list the receiver is known to
    /// hold, normally the previous version's), the list goes as a delta against it when
    /// that is smaller. A list too long to send inline and with no usable delta goes as a
    /// [`WireBlocks::Ref`], which the receiver fetches separately. `invalid` starts false.
    pub fn from_file_info(fi: &FileInfo, base: Option<&[BlockInfo]>) -> WireFile {
        let full_len = 1 + blocks_len(&fi.blocks);
        let full_fits = fi.blocks.len() <= MAX_INLINE_BLOCKS;
        // No base for an empty list: directories, symlinks and tombstones carry `Full([])`.
        let delta = base.filter(|_| !fi.blocks.is_empty()).map(|base| {
            let result = fi.blocks_hash();
            match diff_blocks(base, &fi.blocks) {
                // Unchanged: the receiver holds the very list.
                edits if edits.is_empty() => WireBlocks::Ref(result),
                edits => WireBlocks::Delta {
                    base: blocks_hash(base),
                    result,
                    edits,
                },
            }
        });
        let blocks = match delta {
            Some(d) if d.fits() && (!full_fits || d.encoded_len() < full_len) => d,
            _ if full_fits => WireBlocks::Full(fi.blocks.clone()),
            _ => WireBlocks::Ref(fi.blocks_hash()),
        };
        WireFile {
            name: fi.name.clone(),
            file_type: fi.file_type,
            size: fi.size,
            permissions: fi.permissions,
            modified_ns: fi.modified_ns,
            modified_by: fi.modified_by,
            deleted: fi.deleted,
            invalid: false,
            version: fi.version.clone(),
            sequence: fi.sequence,
            symlink_target: fi.symlink_target.clone(),
            blocks,
        }
    }

    /// Checks an entry from a peer and builds the index entry. `resolve` returns the block
    /// list with a given `blocks_hash` if this device holds one (in any file, local or
    /// remote); it may be called twice (the delta's base, then its result).
    ///
    /// Errors: [`ProtocolError::InvalidName`] and [`ProtocolError::InvalidEntry`] for an
    /// entry to refuse; [`ProtocolError::UnknownBase`] when the list cannot be built here
    /// (fetch `result` with a `BlockListRequest`, then convert again with a resolver that
    /// knows it: keep a clone of a `Delta` or `Ref` entry for that, they are small);
    /// [`ProtocolError::ListMismatch`] and [`ProtocolError::BadEdits`] for a delta that
    /// does not build the list it claims.
    pub fn into_file_info(
        self,
        mut resolve: impl FnMut(&BlockHash) -> Option<Vec<BlockInfo>>,
    ) -> Result<FileInfo, ProtocolError> {
        let invalid_entry = |detail: String| ProtocolError::InvalidEntry {
            name: self.name.clone(),
            detail,
        };
        validate_name(&self.name).map_err(|source| ProtocolError::InvalidName {
            name: self.name.clone(),
            source,
        })?;
        if self.file_type != FileType::Symlink && !self.symlink_target.is_empty() {
            return Err(invalid_entry(format!(
                "a {} carries a symlink target",
                self.file_type.as_str()
            )));
        }
        let blockless = self.deleted || self.file_type != FileType::File;
        let blocks = match self.blocks {
            WireBlocks::Full(v) => v,
            _ if blockless => {
                return Err(invalid_entry(format!(
                    "a {}{} carries a delta or reference block list",
                    if self.deleted { "deleted " } else { "" },
                    self.file_type.as_str()
                )));
            }
            WireBlocks::Delta {
                base,
                result,
                edits,
            } => match resolve(&base) {
                Some(base_list) => {
                    let list = apply_edits(&base_list, &edits)?;
                    check_hash(&list, result)?;
                    list
                }
                None => match resolve(&result) {
                    Some(list) => {
                        check_hash(&list, result)?;
                        list
                    }
                    None => return Err(ProtocolError::UnknownBase { base, result }),
                },
            },
            WireBlocks::Ref(list_hash) => match resolve(&list_hash) {
                Some(list) => {
                    check_hash(&list, list_hash)?;
                    list
                }
                None => {
                    return Err(ProtocolError::UnknownBase {
                        base: list_hash,
                        result: list_hash,
                    });
                }
            },
        };
        if blockless && !blocks.is_empty() {
            return Err(invalid_entry(format!(
                "a {}{} carries {} blocks",
                if self.deleted { "deleted " } else { "" },
                self.file_type.as_str(),
                blocks.len()
            )));
        }
        if !(blockless || (self.invalid && blocks.is_empty())) {
            let sum: u64 = blocks.iter().map(|b| u64::from(b.size)).sum();
            if sum != self.size {
                return Err(invalid_entry(format!(
                    "its blocks add up to {sum} bytes but its size is {}",
                    self.size
                )));
            }
        }
        Ok(FileInfo {
            name: self.name,
            file_type: self.file_type,
            size: self.size,
            permissions: self.permissions,
            modified_ns: self.modified_ns,
            modified_by: self.modified_by,
            deleted: self.deleted,
            version: self.version,
            sequence: self.sequence,
            blocks,
            symlink_target: self.symlink_target,
        })
    }

    /// Bytes of this entry's encoding.
    pub fn encoded_len(&self) -> usize {
        str_len(&self.name)
            + 2
            + varint_len(self.size)
            + varint_len(u64::from(self.permissions))
            + varint_len(((self.modified_ns << 1) ^ (self.modified_ns >> 63)) as u64)
            + 8
            + varint_len(self.version.counters().len() as u64)
            + self
                .version
                .counters()
                .iter()
                .map(|c| 8 + varint_len(c.value))
                .sum::<usize>()
            + varint_len(self.sequence)
            + str_len(&self.symlink_target)
            + self.blocks.encoded_len()
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtocolError> {
        w.str("file name", &self.name, MAX_STRING_LEN)?;
        w.u8(self.file_type.code());
        w.u8(if self.deleted { FLAG_DELETED } else { 0 }
            | if self.invalid { FLAG_INVALID } else { 0 });
        w.varint(self.size);
        if self.permissions > 0o7777 {
            return Err(w.error(format!(
                "permissions {:o} of {:?} have bits above 0o7777",
                self.permissions, self.name
            )));
        }
        w.varint(u64::from(self.permissions));
        w.zigzag(self.modified_ns);
        w.u64_be(self.modified_by.0);
        let counters = self.version.counters();
        w.count("version vector", counters.len(), MAX_VECTOR_COUNTERS)?;
        for c in counters {
            w.u64_be(c.id.0);
            w.varint(c.value);
        }
        if self.sequence == 0 {
            return Err(w.error(format!("{:?} has no sequence number", self.name)));
        }
        w.varint(self.sequence);
        w.str("symlink target", &self.symlink_target, MAX_STRING_LEN)?;
        self.blocks.encode(w)
    }

    pub(crate) fn decode(
        r: &mut Reader<'_>,
        edits_left: &mut usize,
    ) -> Result<Self, ProtocolError> {
        let name = r.str("file name", MAX_STRING_LEN)?;
        let code = r.u8("file type")?;
        let file_type = FileType::from_code(code)
            .ok_or_else(|| r.error(format!("file type {code} is unknown (0, 1 or 2)")))?;
        let flags = r.u8("file flags")?;
        if flags & !(FLAG_DELETED | FLAG_INVALID) != 0 {
            return Err(r.error(format!("file flags {flags:#04x} set unknown bits")));
        }
        let size = r.varint("file size")?;
        let permissions = r.varint_u32("permissions")?;
        if permissions > 0o7777 {
            return Err(r.error(format!(
                "permissions {permissions:o} have bits above 0o7777"
            )));
        }
        let modified_ns = r.zigzag("modification time")?;
        let modified_by = ShortId(r.u64_be("modified by")?);
        let n = r.count("version vector", MAX_VECTOR_COUNTERS, MIN_COUNTER_LEN)?;
        let mut counters = Vec::with_capacity(n);
        for _ in 0..n {
            let id = ShortId(r.u64_be("version device")?);
            let value = r.varint("version counter")?;
            counters.push(Counter { id, value });
        }
        let sequence = r.varint("sequence")?;
        let symlink_target = r.str("symlink target", MAX_STRING_LEN)?;
        let blocks = WireBlocks::decode(r, edits_left)?;
        Ok(WireFile {
            name,
            file_type,
            size,
            permissions,
            modified_ns,
            modified_by,
            deleted: flags & FLAG_DELETED != 0,
            invalid: flags & FLAG_INVALID != 0,
            version: Vector::from_counters(counters),
            sequence,
            symlink_target,
            blocks,
        })
    }
}

fn check_hash(list: &[BlockInfo], expected: BlockHash) -> Result<(), ProtocolError> {
    let got = blocks_hash(list);
    if got == expected {
        Ok(())
    } else {
        Err(ProtocolError::ListMismatch { expected, got })
    }
}

/// Packs entries into `Index` messages within the limits: at most [`MAX_INDEX_FILES`]
/// entries and [`MAX_INDEX_EDITS`] edits, and about [`INDEX_BATCH_BYTES`] of entries (a batch
/// is closed once it reaches that size; one large entry may go alone).
#[derive(Debug)]
pub struct IndexBatch {
    folder: String,
    index_id: u64,
    files: Vec<super::WireFile>,
    bytes: usize,
    edits: usize,
}

impl IndexBatch {
    pub fn new(folder: impl Into<String>, index_id: u64) -> Self {
        Self {
            folder: folder.into(),
            index_id,
            files: Vec::new(),
            bytes: 0,
            edits: 0,
        }
    }

    /// Adds an entry, or hands it back when this batch is full: then send
    /// [`Self::finish`] and push the entry into a new batch.
    #[must_use = "an entry handed back must go into the next batch"]
    pub fn push(&mut self, f: WireFile) -> Option<WireFile> {
        let len = f.encoded_len();
        let edits = f.blocks.edit_count();
        let full = self.files.len() >= MAX_INDEX_FILES
            || self.edits + edits > MAX_INDEX_EDITS
            || (!self.files.is_empty() && self.bytes + len > INDEX_BATCH_BYTES);
        if full {
            return Some(f);
        }
        self.bytes += len;
        self.edits += edits;
        self.files.push(f);
        None
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// The message; `last` when the sender has nothing more to send for now.
    pub fn finish(self, last: bool) -> Message {
        Message::Index(super::Index {
            folder: self.folder,
            index_id: self.index_id,
            files: self.files,
            last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::{block, distinct_blocks, file_info};
    use crate::protocol::{Index, decode_message, encode};

    fn index_frame_len(f: WireFile) -> usize {
        let msg = Message::Index(Index {
            folder: "default".into(),
            index_id: 0x1234_5678_9abc_def0,
            files: vec![f],
            last: true,
        });
        let mut out = Vec::new();
        encode(&msg, &mut out).expect("encodes");
        assert_eq!(decode_message(&out).expect("decodes"), msg);
        out.len()
    }

    fn resolver(lists: Vec<Vec<BlockInfo>>) -> impl FnMut(&BlockHash) -> Option<Vec<BlockInfo>> {
        move |h| lists.iter().find(|l| blocks_hash(l) == *h).cloned()
    }

    /// The targets of the brief: a 256 MiB file of 8192 blocks of 32 KiB.
    #[test]
    fn big_file_changes_cost_a_few_edits_on_the_wire() {
        let old = distinct_blocks(0, 8192);
        let old_fi = file_info("vm/disk.img", old.clone());
        let full = index_frame_len(WireFile::from_file_info(&old_fi, None));

        // 1 MiB in the middle rewritten: 32 blocks replaced.
        let mut new = old.clone();
        new.splice(4000..4032, distinct_blocks(1_000_000, 32));
        let new_fi = file_info("vm/disk.img", new.clone());
        let wf = WireFile::from_file_info(&new_fi, Some(&old));
        assert!(matches!(wf.blocks, WireBlocks::Delta { .. }));
        let region = index_frame_len(wf.clone());
        assert_eq!(wf.into_file_info(resolver(vec![old.clone()])), Ok(new_fi));

        // One block inserted at the start.
        let mut new = old.clone();
        new.insert(0, block(2_000_000));
        let new_fi = file_info("vm/disk.img", new);
        let wf = WireFile::from_file_info(&new_fi, Some(&old));
        let insert = index_frame_len(wf.clone());
        assert_eq!(wf.into_file_info(resolver(vec![old.clone()])), Ok(new_fi));

        eprintln!(
            "Index frame of one 8192-block entry: full {full} B, 32-block region replaced {region} B, one block inserted at the start {insert} B"
        );
        assert!(region < 4096, "{region}");
        assert!(insert < 512, "{insert}");
        assert!(full > 250_000, "{full}");
    }

    #[test]
    fn the_smaller_form_is_chosen() {
        let old = distinct_blocks(0, 100);
        // Nothing in common: the full list is smaller than a delta replacing everything.
        let fi = file_info("a", distinct_blocks(500, 100));
        assert!(matches!(
            WireFile::from_file_info(&fi, Some(&old)).blocks,
            WireBlocks::Full(_)
        ));
        // Metadata-only change: a reference to the list the receiver holds.
        let fi = file_info("a", old.clone());
        let wf = WireFile::from_file_info(&fi, Some(&old));
        assert_eq!(wf.blocks, WireBlocks::Ref(blocks_hash(&old)));
        assert!(wf.encoded_len() < 100, "{}", wf.encoded_len());
        assert_eq!(wf.into_file_info(resolver(vec![old.clone()])), Ok(fi));
        // An empty file: an empty full list, whatever the base.
        let fi = file_info("a", vec![]);
        assert_eq!(
            WireFile::from_file_info(&fi, Some(&old)).blocks,
            WireBlocks::Full(vec![])
        );
        // A deleted file: an empty full list.
        let mut fi = file_info("a", vec![]);
        fi.deleted = true;
        assert_eq!(
            WireFile::from_file_info(&fi, Some(&old)).blocks,
            WireBlocks::Full(vec![])
        );
    }

    #[test]
    fn a_list_too_long_for_an_entry_goes_by_reference() {
        let blocks = vec![block(1); MAX_INLINE_BLOCKS + 1];
        let fi = file_info("huge", blocks.clone());
        let wf = WireFile::from_file_info(&fi, None);
        assert_eq!(wf.blocks, WireBlocks::Ref(blocks_hash(&blocks)));
        match wf.clone().into_file_info(|_| None) {
            Err(ProtocolError::UnknownBase { base, result }) => {
                assert_eq!((base, result), (fi.blocks_hash(), fi.blocks_hash()))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(wf.into_file_info(resolver(vec![blocks])), Ok(fi));
    }

    #[test]
    fn an_unknown_base_is_reported_and_the_result_list_is_enough() {
        let old = distinct_blocks(0, 50);
        let mut new = old.clone();
        new[10] = block(999);
        let fi = file_info("f", new.clone());
        let wf = WireFile::from_file_info(&fi, Some(&old));
        let WireBlocks::Delta { base, result, .. } = wf.blocks.clone() else {
            panic!("{:?}", wf.blocks)
        };
        assert_eq!(
            wf.clone().into_file_info(|_| None),
            Err(ProtocolError::UnknownBase { base, result })
        );
        // After fetching the new list with a BlockListRequest (or when it is held anyway).
        assert_eq!(wf.into_file_info(resolver(vec![new])), Ok(fi));
    }

    #[test]
    fn a_delta_that_builds_another_list_is_refused() {
        let old = distinct_blocks(0, 50);
        let mut new = old.clone();
        new[10] = block(999);
        let mut wf = WireFile::from_file_info(&file_info("f", new), Some(&old));
        if let WireBlocks::Delta { edits, .. } = &mut wf.blocks {
            edits[0].insert[0] = block(998);
        }
        assert!(matches!(
            wf.into_file_info(resolver(vec![old.clone()])),
            Err(ProtocolError::ListMismatch { .. })
        ));
        // A Ref resolved to a list with another hash (a confused resolver).
        let wf = WireFile {
            blocks: WireBlocks::Ref(BlockHash([7; 32])),
            ..WireFile::from_file_info(&file_info("g", old.clone()), None)
        };
        assert!(matches!(
            wf.into_file_info(|_| Some(old.clone())),
            Err(ProtocolError::ListMismatch { .. })
        ));
    }

    #[test]
    fn inconsistent_entries_are_refused() {
        let ok = WireFile::from_file_info(&file_info("f", distinct_blocks(0, 3)), None);
        let cases: Vec<(WireFile, &str)> = vec![
            (
                WireFile {
                    size: 1,
                    ..ok.clone()
                },
                "add up to",
            ),
            (
                WireFile {
                    file_type: FileType::Dir,
                    ..ok.clone()
                },
                "carries 3 blocks",
            ),
            (
                WireFile {
                    deleted: true,
                    ..ok.clone()
                },
                "deleted file carries",
            ),
            (
                WireFile {
                    symlink_target: "x".into(),
                    ..ok.clone()
                },
                "symlink target",
            ),
            (
                WireFile {
                    file_type: FileType::Dir,
                    blocks: WireBlocks::Ref(BlockHash([1; 32])),
                    ..ok.clone()
                },
                "reference block list",
            ),
        ];
        for (wf, want) in cases {
            match wf.clone().into_file_info(|_| None) {
                Err(ProtocolError::InvalidEntry { detail, .. }) => {
                    assert!(detail.contains(want), "{detail}")
                }
                other => panic!("{wf:?}: {other:?}"),
            }
        }
        let bad_name = WireFile {
            name: "../etc/passwd".into(),
            ..ok.clone()
        };
        assert!(matches!(
            bad_name.into_file_info(|_| None),
            Err(ProtocolError::InvalidName { .. })
        ));
        // An invalid entry may come without its blocks.
        let invalid = WireFile {
            invalid: true,
            blocks: WireBlocks::Full(vec![]),
            ..ok
        };
        assert!(invalid.into_file_info(|_| None).is_ok());
    }

    #[test]
    fn batches_respect_the_limits() {
        let small = WireFile::from_file_info(&file_info("s", distinct_blocks(0, 1)), None);
        let mut batch = IndexBatch::new("f", 1);
        let mut n = 0;
        while batch.push(small.clone()).is_none() {
            n += 1;
        }
        assert_eq!(n, MAX_INDEX_FILES);

        // ~2.3 MB entries: one per batch.
        let big = WireFile::from_file_info(&file_info("b", distinct_blocks(0, 65_536)), None);
        let mut batch = IndexBatch::new("f", 1);
        assert!(batch.push(big.clone()).is_none());
        assert!(batch.push(big.clone()).is_some());
        assert_eq!(batch.len(), 1);
        let mut out = Vec::new();
        encode(&batch.finish(false), &mut out).expect("fits in a frame");
    }

    #[test]
    fn encoded_len_is_exact() {
        let old = distinct_blocks(0, 300);
        let mut new = old.clone();
        new.splice(3..5, distinct_blocks(1000, 200));
        let mut fi = file_info("a/b", new);
        fi.modified_ns = -5;
        for wf in [
            WireFile::from_file_info(&fi, None),
            WireFile::from_file_info(&fi, Some(&old)),
            WireFile {
                blocks: WireBlocks::Ref(fi.blocks_hash()),
                ..WireFile::from_file_info(&fi, None)
            },
        ] {
            let mut out = Vec::new();
            wf.encode(&mut Writer::new(&mut out, "test"))
                .expect("encodes");
            assert_eq!(out.len(), wf.encoded_len());
        }
    }
}
