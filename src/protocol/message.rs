//! The messages of the protocol (versions 1 and 2 share them) and their bodies' encodings
//! (see "Messages" in the module docs for the byte layouts and the rules each field follows).

use super::codec::{Reader, Writer};
use super::wirefile::{MIN_FILE_LEN, decode_blocks, encode_blocks};
use super::{
    MAX_BLOCK_SIZE, MAX_BLOCKS_PER_FILE, MAX_CLUSTER_ADDRESSES, MAX_CLUSTER_DEVICES,
    MAX_CLUSTER_FOLDERS, MAX_INDEX_EDITS, MAX_INDEX_FILES, MAX_INLINE_BLOCKS, MAX_STRING_LEN,
    MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, ProtocolError, WireFile,
};
use crate::identity::DeviceId;
use crate::protocol::file::{BlockHash, BlockInfo, blocks_hash};

/// The type byte of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    Hello = 1,
    ClusterConfig = 2,
    Index = 3,
    Request = 4,
    Response = 5,
    BlockListRequest = 6,
    BlockList = 7,
    Ping = 8,
    Close = 9,
}

impl MessageType {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The type of a code defined by protocol version 1; `None` for any other code.
    pub fn from_code(code: u8) -> Option<Self> {
        use MessageType::*;
        Some(match code {
            1 => Hello,
            2 => ClusterConfig,
            3 => Index,
            4 => Request,
            5 => Response,
            6 => BlockListRequest,
            7 => BlockList,
            8 => Ping,
            9 => Close,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use MessageType::*;
        match self {
            Hello => "Hello",
            ClusterConfig => "ClusterConfig",
            Index => "Index",
            Request => "Request",
            Response => "Response",
            BlockListRequest => "BlockListRequest",
            BlockList => "BlockList",
            Ping => "Ping",
            Close => "Close",
        }
    }
}

/// Everything that travels on a connection after the TLS handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    ClusterConfig(ClusterConfig),
    Index(Index),
    Request(Request),
    Response(Response),
    BlockListRequest(BlockListRequest),
    BlockList(BlockList),
    Ping,
    Close { reason: String },
}

/// The first message each side sends, even to a device it will then reject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The highest protocol version the sender speaks.
    pub protocol_version: u32,
    pub device_name: String,
    /// The program, e.g. "shoal".
    pub client_name: String,
    pub client_version: String,
}

/// The folders the sender shares with the receiver, and where each index stands.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ClusterConfig {
    pub folders: Vec<ClusterFolder>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterFolder {
    pub id: String,
    pub label: String,
    /// Every device the sender shares this folder with, the sender and receiver included.
    pub devices: Vec<ClusterDevice>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDevice {
    pub id: DeviceId,
    pub name: String,
    /// Where the sender reaches this device; may be empty.
    pub addresses: Vec<String>,
    /// The ID of this device's index of the folder as the sender holds it (for the sender
    /// itself: its current one); 0 when it holds none.
    pub index_id: u64,
    /// The highest sequence of that index the sender holds (for itself: its latest).
    pub max_sequence: u64,
}

/// A batch of entries of the sender's index of a folder, in increasing sequence order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    pub folder: String,
    /// The sender's current index ID for the folder; never 0. A new one means a reset.
    pub index_id: u64,
    pub files: Vec<WireFile>,
    /// The sender had nothing more to send when it built this batch: the receiver is up
    /// to date as of then.
    pub last: bool,
}

/// A request for one block of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Chosen by the requester, unique among its requests in flight on this connection.
    pub id: u64,
    pub folder: String,
    pub name: String,
    pub offset: u64,
    /// 1 to [`MAX_BLOCK_SIZE`].
    pub size: u32,
    /// BLAKE3 of the block: the responder may answer from any data with this hash.
    pub hash: BlockHash,
}

/// The answer to a [`Request`] (or a [`BlockListRequest`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ResponseCode {
    Ok = 0,
    /// Any other failure (I/O error, overloaded): try elsewhere or later.
    Generic = 1,
    /// No such file, or a folder not shared with the requester (the two are not told apart).
    NoSuchFile = 2,
    /// The responder's entry for the file is invalid (ignored or unreadable).
    Invalid = 3,
    /// The data no longer matches what was indexed: the responder rescans; ask again
    /// after its next index update.
    Changed = 4,
}

impl ResponseCode {
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => ResponseCode::Ok,
            1 => ResponseCode::Generic,
            2 => ResponseCode::NoSuchFile,
            3 => ResponseCode::Invalid,
            4 => ResponseCode::Changed,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The id of the request answered.
    pub id: u64,
    pub code: ResponseCode,
    /// The block's bytes when `code` is `Ok`, empty otherwise.
    pub data: Vec<u8>,
}

/// A request for a whole block list by its `blocks_hash`: the result of a delta the
/// receiver could not build, or a [`WireBlocks::Ref`](super::WireBlocks::Ref).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockListRequest {
    pub id: u64,
    pub folder: String,
    /// The entry that named the list: where the responder looks first.
    pub name: String,
    pub list: BlockHash,
}

/// One part of the answer to a [`BlockListRequest`]; parts of one answer come in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockList {
    /// The id of the request answered.
    pub id: u64,
    pub code: ResponseCode,
    /// Blocks in the whole list (the same in every part); 0 unless `code` is `Ok`.
    pub total: u32,
    /// The next blocks of the list, at most [`MAX_INLINE_BLOCKS`].
    pub blocks: Vec<BlockInfo>,
}

impl Hello {
    /// Our Hello, with the protocol version and the program's name and version.
    pub fn ours(device_name: impl Into<String>) -> Self {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            device_name: device_name.into(),
            client_name: "shoal".into(),
            client_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// The version both sides speak after this Hello from the peer: the lower of the two.
    /// An error (send `Close` with its text, then close) when that is below
    /// [`MIN_PROTOCOL_VERSION`].
    pub fn negotiate(&self) -> Result<u32, ProtocolError> {
        negotiate(PROTOCOL_VERSION, self.protocol_version)
    }
}

/// `min(ours, theirs)` if we still speak it, else an error naming both.
pub fn negotiate(ours: u32, theirs: u32) -> Result<u32, ProtocolError> {
    let v = ours.min(theirs);
    if v < MIN_PROTOCOL_VERSION {
        Err(ProtocolError::UnsupportedVersion {
            theirs,
            min: MIN_PROTOCOL_VERSION,
        })
    } else {
        Ok(v)
    }
}

impl Message {
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::Hello,
            Message::ClusterConfig(_) => MessageType::ClusterConfig,
            Message::Index(_) => MessageType::Index,
            Message::Request(_) => MessageType::Request,
            Message::Response(_) => MessageType::Response,
            Message::BlockListRequest(_) => MessageType::BlockListRequest,
            Message::BlockList(_) => MessageType::BlockList,
            Message::Ping => MessageType::Ping,
            Message::Close { .. } => MessageType::Close,
        }
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        let w = &mut Writer::new(out, self.kind().name());
        match self {
            Message::Hello(h) => {
                w.varint(u64::from(h.protocol_version));
                w.str("device name", &h.device_name, MAX_STRING_LEN)?;
                w.str("client name", &h.client_name, MAX_STRING_LEN)?;
                w.str("client version", &h.client_version, MAX_STRING_LEN)?;
            }
            Message::ClusterConfig(c) => {
                let devices: usize = c.folders.iter().map(|f| f.devices.len()).sum();
                if devices > MAX_CLUSTER_DEVICES {
                    return Err(w.error(format!(
                        "{devices} devices in all folders, more than the limit of {MAX_CLUSTER_DEVICES}"
                    )));
                }
                let addresses: usize = c
                    .folders
                    .iter()
                    .flat_map(|f| &f.devices)
                    .map(|d| d.addresses.len())
                    .sum();
                if addresses > MAX_CLUSTER_ADDRESSES {
                    return Err(w.error(format!(
                        "{addresses} addresses in all devices, more than the limit of {MAX_CLUSTER_ADDRESSES}"
                    )));
                }
                w.count("folders", c.folders.len(), MAX_CLUSTER_FOLDERS)?;
                for f in &c.folders {
                    w.str("folder id", &f.id, MAX_STRING_LEN)?;
                    w.str("folder label", &f.label, MAX_STRING_LEN)?;
                    w.varint(f.devices.len() as u64);
                    for d in &f.devices {
                        w.fixed32(d.id.as_bytes());
                        w.str("device name", &d.name, MAX_STRING_LEN)?;
                        w.varint(d.addresses.len() as u64);
                        for a in &d.addresses {
                            if a.is_empty() {
                                return Err(w.error("an empty device address".into()));
                            }
                            w.str("device address", a, MAX_STRING_LEN)?;
                        }
                        w.varint(d.index_id);
                        w.varint(d.max_sequence);
                    }
                }
            }
            Message::Index(ix) => {
                w.str("folder id", &ix.folder, MAX_STRING_LEN)?;
                if ix.index_id == 0 {
                    return Err(w.error("index ID 0 (index IDs are never 0)".into()));
                }
                w.varint(ix.index_id);
                w.bool(ix.last);
                w.count("files", ix.files.len(), MAX_INDEX_FILES)?;
                let edits: usize = ix.files.iter().map(|f| f.blocks.edit_count()).sum();
                if edits > MAX_INDEX_EDITS {
                    return Err(w.error(format!(
                        "{edits} delta edits in one message, more than the limit of {MAX_INDEX_EDITS}"
                    )));
                }
                let mut prev = 0;
                for f in &ix.files {
                    if f.sequence <= prev {
                        return Err(w.error(format!(
                            "entry {:?} has sequence {} after {prev} (entries go in increasing sequence order)",
                            f.name, f.sequence
                        )));
                    }
                    prev = f.sequence;
                    f.encode(w)?;
                }
            }
            Message::Request(q) => {
                w.varint(q.id);
                w.str("folder id", &q.folder, MAX_STRING_LEN)?;
                w.str("file name", &q.name, MAX_STRING_LEN)?;
                w.varint(q.offset);
                if q.size == 0 || q.size > MAX_BLOCK_SIZE {
                    return Err(w.error(format!(
                        "a request for {} bytes (blocks are 1 to {MAX_BLOCK_SIZE} bytes)",
                        q.size
                    )));
                }
                if q.offset.checked_add(u64::from(q.size)).is_none() {
                    return Err(w.error("offset + size overflows".into()));
                }
                w.varint(u64::from(q.size));
                w.fixed32(&q.hash.0);
            }
            Message::Response(r) => {
                w.varint(r.id);
                w.u8(r.code as u8);
                if r.code != ResponseCode::Ok && !r.data.is_empty() {
                    return Err(w.error(format!("data with code {:?}", r.code)));
                }
                w.bytes("block data", &r.data, MAX_BLOCK_SIZE as usize)?;
            }
            Message::BlockListRequest(q) => {
                w.varint(q.id);
                w.str("folder id", &q.folder, MAX_STRING_LEN)?;
                w.str("file name", &q.name, MAX_STRING_LEN)?;
                w.fixed32(&q.list.0);
            }
            Message::BlockList(l) => {
                w.varint(l.id);
                w.u8(l.code as u8);
                if l.total as usize > MAX_BLOCKS_PER_FILE {
                    return Err(w.error(format!(
                        "a list of {} blocks, more than the limit of {MAX_BLOCKS_PER_FILE}",
                        l.total
                    )));
                }
                if l.code != ResponseCode::Ok && (l.total != 0 || !l.blocks.is_empty()) {
                    return Err(w.error(format!("blocks with code {:?}", l.code)));
                }
                if l.blocks.len() > l.total as usize {
                    return Err(w.error("a part longer than the whole list".into()));
                }
                w.varint(u64::from(l.total));
                encode_blocks(w, "blocks", &l.blocks, MAX_INLINE_BLOCKS)?;
            }
            Message::Ping => {}
            Message::Close { reason } => w.str("reason", reason, MAX_STRING_LEN)?,
        }
        Ok(())
    }

    pub(crate) fn decode_body(kind: MessageType, body: &[u8]) -> Result<Message, ProtocolError> {
        let r = &mut Reader::new(body, kind.name());
        let msg = match kind {
            MessageType::Hello => {
                let msg = Message::Hello(Hello {
                    protocol_version: r.varint_u32("protocol version")?,
                    device_name: r.str("device name", MAX_STRING_LEN)?,
                    client_name: r.str("client name", MAX_STRING_LEN)?,
                    client_version: r.str("client version", MAX_STRING_LEN)?,
                });
                // Later versions may append fields to Hello, and only to Hello: a peer
                // must be able to read any version's Hello to agree on a version.
                return Ok(msg);
            }
            MessageType::ClusterConfig => {
                let nf = r.count("folders", MAX_CLUSTER_FOLDERS, 3)?;
                // Totals over the whole message, so a frame of tiny elements cannot
                // decode into many times its size.
                let mut devices_left = MAX_CLUSTER_DEVICES;
                let mut addresses_left = MAX_CLUSTER_ADDRESSES;
                let mut folders = Vec::with_capacity(nf);
                for _ in 0..nf {
                    let id = r.str("folder id", MAX_STRING_LEN)?;
                    let label = r.str("folder label", MAX_STRING_LEN)?;
                    let nd = r.count("devices in all folders", devices_left, 36)?;
                    devices_left -= nd;
                    let mut devices = Vec::with_capacity(nd);
                    for _ in 0..nd {
                        let id = DeviceId::from_bytes(r.fixed32("device ID")?);
                        let name = r.str("device name", MAX_STRING_LEN)?;
                        let na = r.count("addresses in all devices", addresses_left, 2)?;
                        addresses_left -= na;
                        let mut addresses = Vec::with_capacity(na);
                        for _ in 0..na {
                            let a = r.str("device address", MAX_STRING_LEN)?;
                            if a.is_empty() {
                                return Err(r.error("an empty device address".into()));
                            }
                            addresses.push(a);
                        }
                        devices.push(ClusterDevice {
                            id,
                            name,
                            addresses,
                            index_id: r.varint("index ID")?,
                            max_sequence: r.varint("max sequence")?,
                        });
                    }
                    folders.push(ClusterFolder { id, label, devices });
                }
                Message::ClusterConfig(ClusterConfig { folders })
            }
            MessageType::Index => {
                let folder = r.str("folder id", MAX_STRING_LEN)?;
                let index_id = r.varint("index ID")?;
                if index_id == 0 {
                    return Err(r.error("index ID 0 (index IDs are never 0)".into()));
                }
                let last = r.bool("last")?;
                let n = r.count("files", MAX_INDEX_FILES, MIN_FILE_LEN)?;
                let mut files = Vec::with_capacity(n);
                let mut edits_left = MAX_INDEX_EDITS;
                let mut prev = 0;
                for _ in 0..n {
                    let f = WireFile::decode(r, &mut edits_left)?;
                    if f.sequence <= prev {
                        return Err(r.error(format!(
                            "entry {:?} has sequence {} after {prev} (entries go in increasing sequence order, from 1)",
                            f.name, f.sequence
                        )));
                    }
                    prev = f.sequence;
                    files.push(f);
                }
                Message::Index(Index {
                    folder,
                    index_id,
                    files,
                    last,
                })
            }
            MessageType::Request => {
                let id = r.varint("request id")?;
                let folder = r.str("folder id", MAX_STRING_LEN)?;
                let name = r.str("file name", MAX_STRING_LEN)?;
                let offset = r.varint("offset")?;
                let size = r.varint_u32("size")?;
                if size == 0 || size > MAX_BLOCK_SIZE {
                    return Err(r.error(format!(
                        "a request for {size} bytes (blocks are 1 to {MAX_BLOCK_SIZE} bytes)"
                    )));
                }
                if offset.checked_add(u64::from(size)).is_none() {
                    return Err(r.error("offset + size overflows".into()));
                }
                let hash = BlockHash(r.fixed32("block hash")?);
                Message::Request(Request {
                    id,
                    folder,
                    name,
                    offset,
                    size,
                    hash,
                })
            }
            MessageType::Response => {
                let id = r.varint("request id")?;
                let code = response_code(r)?;
                let data = r.bytes("block data", MAX_BLOCK_SIZE as usize)?;
                if code != ResponseCode::Ok && !data.is_empty() {
                    return Err(r.error(format!("data with code {code:?}")));
                }
                Message::Response(Response {
                    id,
                    code,
                    data: data.to_vec(),
                })
            }
            MessageType::BlockListRequest => Message::BlockListRequest(BlockListRequest {
                id: r.varint("request id")?,
                folder: r.str("folder id", MAX_STRING_LEN)?,
                name: r.str("file name", MAX_STRING_LEN)?,
                list: BlockHash(r.fixed32("list hash")?),
            }),
            MessageType::BlockList => {
                let id = r.varint("request id")?;
                let code = response_code(r)?;
                let total = r.varint_u32("total")?;
                if total as usize > MAX_BLOCKS_PER_FILE {
                    return Err(r.error(format!(
                        "a list of {total} blocks, more than the limit of {MAX_BLOCKS_PER_FILE}"
                    )));
                }
                let blocks = decode_blocks(r, "blocks", MAX_INLINE_BLOCKS.min(total as usize))?;
                if code != ResponseCode::Ok && total != 0 {
                    return Err(r.error(format!("blocks with code {code:?}")));
                }
                Message::BlockList(BlockList {
                    id,
                    code,
                    total,
                    blocks,
                })
            }
            MessageType::Ping => Message::Ping,
            MessageType::Close => Message::Close {
                reason: r.str("reason", MAX_STRING_LEN)?,
            },
        };
        r.finish()?;
        Ok(msg)
    }
}

pub(crate) fn response_code(r: &mut Reader<'_>) -> Result<ResponseCode, ProtocolError> {
    let c = r.u8("response code")?;
    ResponseCode::from_code(c).ok_or_else(|| r.error(format!("response code {c} is unknown")))
}

/// The parts that answer a [`BlockListRequest`] with `blocks` (at least one part, so an
/// empty list is answered too).
pub fn block_list_parts(id: u64, blocks: &[BlockInfo]) -> impl Iterator<Item = Message> + '_ {
    let total = u32::try_from(blocks.len()).unwrap_or(u32::MAX);
    let first = std::iter::once(&blocks[..blocks.len().min(MAX_INLINE_BLOCKS)]);
    let rest = blocks
        .get(MAX_INLINE_BLOCKS..)
        .unwrap_or(&[])
        .chunks(MAX_INLINE_BLOCKS);
    first.chain(rest).map(move |part| {
        Message::BlockList(BlockList {
            id,
            code: ResponseCode::Ok,
            total,
            blocks: part.to_vec(),
        })
    })
}

/// Collects the parts of the answer to one [`BlockListRequest`] and checks the whole.
#[derive(Debug)]
pub struct BlockListAssembler {
    id: u64,
    expected: BlockHash,
    /// The total announced by the first part.
    total: Option<u32>,
    blocks: Vec<BlockInfo>,
}

impl BlockListAssembler {
    /// For the request `id` that asked for the list `expected`.
    pub fn new(id: u64, expected: BlockHash) -> Self {
        Self {
            id,
            expected,
            total: None,
            blocks: Vec::new(),
        }
    }

    /// Takes the next part: `Ok(None)` while parts are missing, the list once complete and
    /// verified. A refusal (`code` not `Ok`) is [`ProtocolError::BlockListRefused`]; parts
    /// that disagree or a list with another hash are [`ProtocolError::BadBlockList`].
    pub fn push(&mut self, part: BlockList) -> Result<Option<Vec<BlockInfo>>, ProtocolError> {
        let bad = |detail: String| ProtocolError::BadBlockList {
            id: part.id,
            detail,
        };
        if part.id != self.id {
            return Err(bad(format!(
                "a part for request {} given to {}",
                part.id, self.id
            )));
        }
        if part.code != ResponseCode::Ok {
            return Err(ProtocolError::BlockListRefused { code: part.code });
        }
        let total = *self.total.get_or_insert(part.total);
        if part.total != total {
            return Err(bad(format!(
                "a part announces {} blocks after one announced {total}",
                part.total
            )));
        }
        if self.blocks.len() + part.blocks.len() > total as usize {
            return Err(bad(format!("more blocks than the {total} announced")));
        }
        if part.blocks.is_empty() && total != 0 {
            return Err(bad("an empty part".into()));
        }
        self.blocks.extend_from_slice(&part.blocks);
        if self.blocks.len() < total as usize {
            return Ok(None);
        }
        let got = blocks_hash(&self.blocks);
        if got != self.expected {
            return Err(bad(format!(
                "the list's hash is {got:?}, not the {:?} requested",
                self.expected
            )));
        }
        Ok(Some(std::mem::take(&mut self.blocks)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::distinct_blocks;

    fn parts_of(blocks: &[BlockInfo]) -> Vec<BlockList> {
        block_list_parts(7, blocks)
            .map(|m| match m {
                Message::BlockList(l) => l,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn block_lists_travel_in_parts_and_are_checked() {
        for n in [
            0,
            1,
            MAX_INLINE_BLOCKS,
            MAX_INLINE_BLOCKS + 1,
            3 * MAX_INLINE_BLOCKS + 5,
        ] {
            let blocks = distinct_blocks(0, n);
            let parts = parts_of(&blocks);
            assert_eq!(parts.len(), n.div_ceil(MAX_INLINE_BLOCKS).max(1));
            let mut asm = BlockListAssembler::new(7, blocks_hash(&blocks));
            let mut got = None;
            for (i, p) in parts.into_iter().enumerate() {
                assert!(got.is_none(), "list done before part {i}");
                got = asm.push(p).expect("valid part");
            }
            assert_eq!(got, Some(blocks));
        }
    }

    #[test]
    fn bad_block_list_answers_are_refused() {
        let blocks = distinct_blocks(0, MAX_INLINE_BLOCKS + 1);
        let parts = parts_of(&blocks);
        // Another list.
        let mut asm = BlockListAssembler::new(7, BlockHash([0; 32]));
        assert!(asm.push(parts[0].clone()).expect("part").is_none());
        assert!(matches!(
            asm.push(parts[1].clone()),
            Err(ProtocolError::BadBlockList { .. })
        ));
        // Too many blocks.
        let mut asm = BlockListAssembler::new(7, blocks_hash(&blocks));
        asm.push(parts[0].clone()).expect("part");
        let mut extra = parts[0].clone();
        extra.blocks.truncate(2);
        assert!(asm.push(extra).is_err());
        // A changed total, another id, a refusal.
        let mut asm = BlockListAssembler::new(7, blocks_hash(&blocks));
        asm.push(parts[0].clone()).expect("part");
        let mut changed = parts[1].clone();
        changed.total += 1;
        assert!(asm.push(changed).is_err());
        let mut asm = BlockListAssembler::new(8, blocks_hash(&blocks));
        assert!(asm.push(parts[0].clone()).is_err());
        let refusal = BlockList {
            id: 8,
            code: ResponseCode::NoSuchFile,
            total: 0,
            blocks: vec![],
        };
        assert_eq!(
            asm.push(refusal),
            Err(ProtocolError::BlockListRefused {
                code: ResponseCode::NoSuchFile
            })
        );
    }

    #[test]
    fn versions_negotiate_to_the_lower_one() {
        assert_eq!(negotiate(1, 1), Ok(1));
        assert_eq!(negotiate(1, 7), Ok(1));
        assert_eq!(negotiate(3, 2), Ok(2));
        let err = negotiate(1, 0).expect_err("version 0");
        assert!(err.to_string().contains("version 0"), "{err}");
        assert_eq!(Hello::ours("laptop").negotiate(), Ok(PROTOCOL_VERSION));
    }
}
