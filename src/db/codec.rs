//! The compact byte forms the index stores: version vectors, inline blocks, block lists.
//!
//! Decoding never trusts its input: a blob of the wrong length or a truncated varint is a
//! `DbError::Damaged`, never a panic.

use super::DbError;
use crate::protocol::{BlockHash, BlockInfo};

/// Bytes of one block list record: the 32-byte hash, then the size as u32 little-endian
/// (the same bytes `protocol::file::blocks_hash` hashes).
pub const BLOCK_RECORD: usize = 36;

/// Appends `v` as an unsigned LEB128 varint (1 byte below 128, 5 bytes for unix seconds).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one varint from the front of `buf`, advancing it.
pub fn get_varint(buf: &mut &[u8]) -> Result<u64, DbError> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf
            .split_first()
            .ok_or_else(|| DbError::Damaged("a version vector ends in the middle".into()))?;
        *buf = rest;
        let part = u64::from(b & 0x7f);
        if shift == 63 && part > 1 {
            break;
        }
        v |= part << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DbError::Damaged(
        "a version vector holds an oversized number".into(),
    ))
}

/// A version vector as varint pairs `(devices.idx, counter)`.
pub fn encode_vector(pairs: impl IntoIterator<Item = (i64, u64)>) -> Result<Vec<u8>, DbError> {
    let mut out = Vec::with_capacity(8);
    for (idx, value) in pairs {
        let idx = u64::try_from(idx)
            .map_err(|_| DbError::Damaged(format!("device idx {idx} is negative")))?;
        put_varint(&mut out, idx);
        put_varint(&mut out, value);
    }
    Ok(out)
}

/// The `(devices.idx, counter)` pairs of a stored vector.
pub fn decode_vector(mut blob: &[u8]) -> Result<Vec<(i64, u64)>, DbError> {
    let mut pairs = Vec::with_capacity(2);
    while !blob.is_empty() {
        let idx = get_varint(&mut blob)?;
        let value = get_varint(&mut blob)?;
        let idx = i64::try_from(idx)
            .map_err(|_| DbError::Damaged(format!("device idx {idx} is out of range")))?;
        pairs.push((idx, value));
    }
    Ok(pairs)
}

/// The inline form of a single-block file: the hash alone when the block covers the whole
/// file (the usual case), else hash and size.
pub fn encode_single(block: &BlockInfo, file_size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOCK_RECORD);
    out.extend_from_slice(&block.hash.0);
    if u64::from(block.size) != file_size {
        out.extend_from_slice(&block.size.to_le_bytes());
    }
    out
}

pub fn decode_single(blob: &[u8], file_size: u64) -> Result<BlockInfo, DbError> {
    match blob.len() {
        32 => {
            let size = u32::try_from(file_size).map_err(|_| {
                DbError::Damaged(format!(
                    "a single-block file of {file_size} bytes has no block size"
                ))
            })?;
            Ok(BlockInfo {
                hash: hash_at(blob, 0),
                size,
            })
        }
        BLOCK_RECORD => Ok(record(blob, 0)),
        n => Err(DbError::Damaged(format!(
            "an inline block is {n} bytes, expected 32 or 36"
        ))),
    }
}

/// A block list as fixed-width records.
pub fn encode_list(blocks: &[BlockInfo]) -> Vec<u8> {
    let mut out = Vec::with_capacity(blocks.len() * BLOCK_RECORD);
    for b in blocks {
        out.extend_from_slice(&b.hash.0);
        out.extend_from_slice(&b.size.to_le_bytes());
    }
    out
}

pub fn decode_list(data: &[u8]) -> Result<Vec<BlockInfo>, DbError> {
    check_list(data)?;
    Ok((0..data.len() / BLOCK_RECORD)
        .map(|i| record(data, i * BLOCK_RECORD))
        .collect())
}

fn check_list(data: &[u8]) -> Result<(), DbError> {
    if !data.len().is_multiple_of(BLOCK_RECORD) {
        return Err(DbError::Damaged(format!(
            "a block list is {} bytes, not a multiple of {BLOCK_RECORD}",
            data.len()
        )));
    }
    Ok(())
}

/// The block that starts at `offset` in a stored list, if one does: walks the sizes
/// without building the list.
pub fn list_block_at(data: &[u8], offset: u64) -> Result<Option<BlockInfo>, DbError> {
    check_list(data)?;
    let mut at = 0u64;
    for start in (0..data.len()).step_by(BLOCK_RECORD) {
        if at > offset {
            break;
        }
        let b = record(data, start);
        if at == offset {
            return Ok(Some(b));
        }
        at += u64::from(b.size);
    }
    Ok(None)
}

/// The 32-byte hash at `start`. Callers have checked that `buf` holds it.
fn hash_at(buf: &[u8], start: usize) -> BlockHash {
    let mut h = [0u8; 32];
    h.copy_from_slice(&buf[start..start + 32]);
    BlockHash(h)
}

/// The record at `start`. Callers have checked that `buf` holds a whole record there.
fn record(buf: &[u8], start: usize) -> BlockInfo {
    let mut s = [0u8; 4];
    s.copy_from_slice(&buf[start + 32..start + BLOCK_RECORD]);
    BlockInfo {
        hash: hash_at(buf, start),
        size: u32::from_le_bytes(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::file::blocks_hash;
    use proptest::prelude::*;

    fn block(n: u8, size: u32) -> BlockInfo {
        BlockInfo {
            hash: BlockHash([n; 32]),
            size,
        }
    }

    #[test]
    fn stored_list_bytes_are_what_blocks_hash_hashes() {
        let blocks = [block(1, 10), block(2, 20)];
        let data = encode_list(&blocks);
        assert_eq!(
            BlockHash(*blake3::hash(&data).as_bytes()),
            blocks_hash(&blocks)
        );
    }

    #[test]
    fn list_block_at_finds_block_starts_only() {
        let data = encode_list(&[block(1, 10), block(2, 20), block(3, 5)]);
        assert_eq!(list_block_at(&data, 0).ok().flatten(), Some(block(1, 10)));
        assert_eq!(list_block_at(&data, 30).ok().flatten(), Some(block(3, 5)));
        assert_eq!(list_block_at(&data, 5).ok().flatten(), None);
        assert_eq!(list_block_at(&data, 35).ok().flatten(), None);
        assert!(list_block_at(&data[..40], 0).is_err());
    }

    #[test]
    fn damaged_blobs_are_errors_not_panics() {
        assert!(decode_vector(&[0x80]).is_err());
        assert!(decode_vector(&[1]).is_err());
        assert!(decode_vector(&[0xff; 11]).is_err());
        assert!(decode_single(&[0; 31], 5).is_err());
        assert!(decode_single(&[0; 32], u64::MAX).is_err());
        assert!(decode_list(&[0; 37]).is_err());
    }

    #[test]
    fn single_block_size_is_implied_when_it_is_the_file_size() {
        let b = block(9, 4096);
        assert_eq!(encode_single(&b, 4096).len(), 32);
        assert_eq!(encode_single(&b, 4097).len(), 36);
        assert_eq!(decode_single(&encode_single(&b, 4096), 4096).ok(), Some(b));
        assert_eq!(decode_single(&encode_single(&b, 1), 1).ok(), Some(b));
    }

    proptest! {
        #[test]
        fn vectors_round_trip(pairs in proptest::collection::vec((0i64..i64::MAX, any::<u64>()), 0..8)) {
            let blob = encode_vector(pairs.iter().copied()).expect("encode");
            prop_assert_eq!(decode_vector(&blob).expect("decode"), pairs);
        }

        #[test]
        fn lists_round_trip(raw in proptest::collection::vec((any::<u8>(), any::<u32>()), 0..20)) {
            let blocks: Vec<BlockInfo> = raw.into_iter().map(|(n, s)| block(n, s)).collect();
            prop_assert_eq!(decode_list(&encode_list(&blocks)).expect("decode"), blocks);
        }
    }
}
