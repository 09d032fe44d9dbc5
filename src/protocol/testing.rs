//! Test helpers: sample values and proptest strategies for every message.

use super::*;
use crate::identity::{DeviceId, ShortId};
use crate::protocol::file::{BlockHash, BlockInfo, FileInfo, FileType};
use crate::protocol::vector::{Counter, Vector};
use proptest::prelude::*;

/// A block with a hash derived from `n` and a size of 24,000 to 41,000 bytes.
pub(crate) fn block(n: u64) -> BlockInfo {
    BlockInfo {
        hash: BlockHash::of(&n.to_le_bytes()),
        size: 24_000 + (n % 17_000) as u32,
    }
}

/// `n` different blocks, numbered from `start`.
pub(crate) fn distinct_blocks(start: u64, n: usize) -> Vec<BlockInfo> {
    (start..start + n as u64).map(block).collect()
}

/// A live file with these blocks and plausible metadata.
pub(crate) fn file_info(name: &str, blocks: Vec<BlockInfo>) -> FileInfo {
    let me = ShortId(0x1122_3344_5566_7788);
    FileInfo {
        name: name.into(),
        file_type: FileType::File,
        size: blocks.iter().map(|b| u64::from(b.size)).sum(),
        permissions: 0o644,
        modified_ns: 1_763_000_000_123_456_789,
        modified_by: me,
        deleted: false,
        version: Vector::new().updated(me, 1_763_000_000),
        sequence: 4242,
        blocks,
        symlink_target: String::new(),
    }
}

pub(crate) fn hello_frame() -> Vec<u8> {
    let mut out = Vec::new();
    encode(&Message::Hello(Hello::ours("test device")), &mut out).expect("hello encodes");
    out
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn hash() -> impl Strategy<Value = BlockHash> {
    proptest::array::uniform32(any::<u8>()).prop_map(BlockHash)
}

fn any_block() -> impl Strategy<Value = BlockInfo> {
    (hash(), 1..=MAX_BLOCK_SIZE).prop_map(|(hash, size)| BlockInfo { hash, size })
}

fn blocks(max: usize) -> impl Strategy<Value = Vec<BlockInfo>> {
    proptest::collection::vec(any_block(), 0..max)
}

fn vector() -> impl Strategy<Value = Vector> {
    proptest::collection::vec((any::<u64>(), any::<u64>()), 0..4).prop_map(|v| {
        Vector::from_counters(
            v.into_iter()
                .map(|(id, value)| Counter {
                    id: ShortId(id),
                    value,
                })
                .collect(),
        )
    })
}

fn wire_blocks() -> impl Strategy<Value = WireBlocks> {
    let edit = (any::<u32>(), any::<u32>(), blocks(3)).prop_map(|(at, remove, insert)| BlockEdit {
        at,
        remove,
        insert,
    });
    prop_oneof![
        blocks(5).prop_map(WireBlocks::Full),
        (hash(), hash(), proptest::collection::vec(edit, 0..4)).prop_map(
            |(base, result, edits)| WireBlocks::Delta {
                base,
                result,
                edits
            }
        ),
        hash().prop_map(WireBlocks::Ref),
    ]
}

/// An entry with any field values the codec accepts (its sequence is set by the caller).
fn wire_file() -> impl Strategy<Value = WireFile> {
    (
        (text(), 0u8..3, any::<u64>(), 0u32..=0o7777, any::<i64>()),
        (any::<u64>(), any::<bool>(), any::<bool>(), vector()),
        (text(), wire_blocks()),
    )
        .prop_map(
            |(
                (name, ty, size, permissions, modified_ns),
                (by, deleted, invalid, version),
                (symlink_target, blocks),
            )| WireFile {
                name,
                file_type: FileType::from_code(ty).unwrap_or(FileType::File),
                size,
                permissions,
                modified_ns,
                modified_by: ShortId(by),
                deleted,
                invalid,
                version,
                sequence: 1,
                symlink_target,
                blocks,
            },
        )
}

fn index() -> impl Strategy<Value = Index> {
    (
        text(),
        1..=u64::MAX,
        proptest::collection::vec((wire_file(), 1u64..1_000_000), 0..4),
        any::<bool>(),
    )
        .prop_map(|(folder, index_id, entries, last)| {
            let mut seq = 0;
            let files = entries
                .into_iter()
                .map(|(mut f, step)| {
                    seq += step;
                    f.sequence = seq;
                    f
                })
                .collect();
            Index {
                folder,
                index_id,
                files,
                last,
            }
        })
}

fn cluster_config() -> impl Strategy<Value = ClusterConfig> {
    let device = (
        proptest::array::uniform32(any::<u8>()),
        text(),
        proptest::collection::vec("\\PC{1,20}", 0..3),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(id, name, addresses, index_id, max_sequence)| ClusterDevice {
                id: DeviceId::from_bytes(id),
                name,
                addresses,
                index_id,
                max_sequence,
            },
        );
    let folder = (text(), text(), proptest::collection::vec(device, 0..3))
        .prop_map(|(id, label, devices)| ClusterFolder { id, label, devices });
    proptest::collection::vec(folder, 0..3).prop_map(|folders| ClusterConfig { folders })
}

fn error_code() -> impl Strategy<Value = ResponseCode> {
    prop_oneof![
        Just(ResponseCode::Generic),
        Just(ResponseCode::NoSuchFile),
        Just(ResponseCode::Invalid),
        Just(ResponseCode::Changed),
    ]
}

/// Any message the codec accepts.
pub(crate) fn any_message() -> impl Strategy<Value = Message> {
    let hello = (any::<u32>(), text(), text(), text()).prop_map(|(v, d, c, cv)| {
        Message::Hello(Hello {
            protocol_version: v,
            device_name: d,
            client_name: c,
            client_version: cv,
        })
    });
    let request = (
        any::<u64>(),
        text(),
        text(),
        0..u64::MAX / 2,
        1..=MAX_BLOCK_SIZE,
        hash(),
    )
        .prop_map(|(id, folder, name, offset, size, hash)| {
            Message::Request(Request {
                id,
                folder,
                name,
                offset,
                size,
                hash,
            })
        });
    let response = prop_oneof![
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(id, data)| {
            Response {
                id,
                code: ResponseCode::Ok,
                data,
            }
        }),
        (any::<u64>(), error_code()).prop_map(|(id, code)| Response {
            id,
            code,
            data: vec![]
        }),
    ]
    .prop_map(Message::Response);
    let list_request =
        (any::<u64>(), text(), text(), hash()).prop_map(|(id, folder, name, list)| {
            Message::BlockListRequest(BlockListRequest {
                id,
                folder,
                name,
                list,
            })
        });
    let list = prop_oneof![
        (any::<u64>(), blocks(4), 0u32..=MAX_BLOCKS_PER_FILE as u32).prop_map(
            |(id, blocks, extra)| BlockList {
                id,
                code: ResponseCode::Ok,
                total: (blocks.len() as u32).max(extra),
                blocks,
            }
        ),
        (any::<u64>(), error_code()).prop_map(|(id, code)| BlockList {
            id,
            code,
            total: 0,
            blocks: vec![]
        }),
    ]
    .prop_map(Message::BlockList);
    prop_oneof![
        hello,
        cluster_config().prop_map(Message::ClusterConfig),
        index().prop_map(Message::Index),
        request,
        response,
        list_request,
        list,
        Just(Message::Ping),
        text().prop_map(|reason| Message::Close { reason }),
    ]
}
