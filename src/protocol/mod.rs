//! The Shoal wire protocol, version 2: what devices say to each other, byte for byte.
//!
//! This module owns the data types that travel between devices (file entries, version
//! vectors, messages), their encoding, and the checks on what a peer sends. It must never
//! touch a socket, a file, the database or a clock: plain values in, plain values out, so
//! it is tested with values alone. **These docs are the specification**: a compatible peer
//! can be written from them.
//!
//! Version 2 is version 1 plus compressed frames ([Compression](#compression-version-2));
//! a version 2 device speaks version 1 to a version 1 peer.
//!
//! Public API in brief: [`encode`], [`FrameEncoder`] and [`FrameDecoder`] (frames), [`Message`] and its
//! structs, [`Hello::negotiate`], [`WireFile`] with [`WireFile::from_file_info`] and
//! [`WireFile::into_file_info`], [`diff_blocks`] / [`apply_edits`], [`IndexBatch`],
//! [`block_list_parts`] / [`BlockListAssembler`], [`validate_name`], [`ProtocolError`].
//!
//! # Connection
//!
//! 1. The transport is TLS 1.3 with ALPN `shoal/1`; both sides present a certificate, and
//!    a device's ID is the SHA-256 of its certificate's DER bytes. This module never sees
//!    TLS: everything below travels inside it.
//! 2. Each side sends a [`Hello`] at once, as its first frame, even to a device it is
//!    about to reject (so that device can be listed as pending under its name). The first
//!    frame received must be a Hello of at most [`MAX_HELLO_FRAME_LEN`] bytes; any other
//!    first frame, and any later Hello, is an error.
//! 3. Each side computes the version both speak (see [Versions](#versions-and-extensions)).
//!    If the peer's device ID is not trusted, or no common version exists, the side sends
//!    `Close` and closes. It sends nothing else first: no folder ID, label or file name
//!    ever goes to an untrusted device.
//! 4. Otherwise each side sends a `ClusterConfig`, then `Index` messages for the folders
//!    both share, then anything: block requests and responses, index updates as changes
//!    happen, pings. A `ClusterConfig` is re-sent whenever the sender's configuration of
//!    shared folders or devices changes.
//! 5. A side that closes on purpose sends `Close { reason }` first. A side that receives a
//!    frame it cannot decode (any [`ProtocolError`] from the [`FrameDecoder`]) closes the
//!    connection, with a `Close` naming the error when it can.
//!
//! Liveness: a side sends `Ping` when it has sent nothing for [`PING_INTERVAL`]; a side
//! that has received nothing for [`IDLE_TIMEOUT`] closes the connection.
//!
//! # Frames
//!
//! ```text
//! offset  size        field
//! 0       4           length: u32 big-endian, the bytes that follow (type + flags + body),
//!                     2 ..= MAX_FRAME_LEN (16 MiB); 2 ..= MAX_HELLO_FRAME_LEN (16 KiB)
//!                     for the first frame of a connection
//! 4       1           type: the message type (table below)
//! 5       1           flags: bit 0 FLAG_COMPRESSED, "the body is compressed" (version 2
//!                     on, never on a Hello); every other bit, and bit 0 in version 1,
//!                     must be 0
//! 6       length - 2  body: the message's fields, in the order given below, or with
//!                     bit 0 set their compressed form (see "Compression")
//! ```
//!
//! A receiver checks, in this order and as soon as the bytes needed are there: the length
//! against its limit (from the 4 length bytes alone, before buffering or allocating for
//! the frame), `length >= 2`, the type, the flags, the Hello rules of the connection, then
//! the body (expanded first if compressed), which must decode exactly: a body that ends
//! early or has bytes left over is an error (Hello alone may have bytes left over, see
//! below).
//!
//! # Compression (version 2)
//!
//! Once both sides speak version 2, any frame but the Hello may carry its body compressed
//! with LZ4 (the block format, as in the reference `LZ4_compress_default`: no frame
//! header, no checksum), marked by flag bit 0:
//!
//! ```text
//! varint   size      the body's length once expanded: at most the type's limit below,
//!                    and at most 255 × the bytes of `data` (LZ4's own bound)
//! ...      data      the LZ4 block, which must expand to exactly `size` bytes
//! ```
//!
//! The expanded body is then read as that message's body, with every rule of the
//! uncompressed one. The limit on `size`: for a `Response`, [`MAX_BLOCK_SIZE`] + 14 (one
//! block and its header); for any other type, [`MAX_FRAME_LEN`] − 2 (what an uncompressed
//! frame can hold). A receiver checks `size` against both bounds before it allocates
//! anything for it, so a small frame cannot make it allocate much (a decompression bomb);
//! a `size` over a bound, data that does not expand, or expands to another size, is an
//! error that closes the connection.
//!
//! Compressing is the sender's choice, frame by frame; a receiver speaking version 2 must
//! accept either form of any frame but the Hello. Shoal's choice ([`FrameEncoder`]):
//! bodies of at least [`frame::MIN_COMPRESS_LEN`] (256) bytes; for a body over 8 KiB, a
//! 2 KiB window ([`frame::COMPRESS_SAMPLE_LEN`]) from its middle is compressed first and
//! the body is tried only if that window shrinks to 95 % or less (so incompressible
//! blocks, already compressed or encrypted files, cost about 1 µs each, some 40 ms per
//! GiB, and nothing at the receiver); the compressed form is sent only if it is at most
//! 90 % of the body. Blocks are
//! verified (BLAKE3, size) on the expanded data, as before: compression changes nothing
//! about what is written.
//!
//! # Values
//!
//! - `u8`: one byte. `bool`: one byte, 0 or 1; other values are errors.
//! - `u64be`: 8 bytes, big-endian.
//! - `varint`: an unsigned integer in LEB128 (7 bits per byte, least significant group
//!   first, high bit set on every byte but the last), at most 10 bytes, in its shortest
//!   form (no final `0x00` byte after the first); a field declared `varint32` must be
//!   below 2^32.
//! - `zigzag`: a signed 64-bit integer `n` as the varint of `(n << 1) ^ (n >> 63)`.
//! - `hash`: 32 bytes, a BLAKE3 digest. `device_id`: 32 bytes, a SHA-256 digest.
//! - `string`: a varint byte length, at most [`MAX_STRING_LEN`] (4096), then that many
//!   bytes of UTF-8.
//! - `list<T>`: a varint count, then that many `T`. A count above the list's limit, or
//!   larger than the bytes left in the body divided by the smallest encoding of a `T`, is
//!   an error found before anything is allocated.
//! - `block`: `hash hash, varint32 size` with `1 <= size <= MAX_BLOCK_SIZE` (128 KiB): one
//!   content-defined block. Its offset in the file is the sum of the sizes before it.
//!
//! # Messages
//!
//! | type | message | body |
//! |---|---|---|
//! | 1 | [`Hello`] | who is speaking, which version |
//! | 2 | [`ClusterConfig`] | the folders shared with the receiver, where each index stands |
//! | 3 | [`Index`] | a batch of index entries of one folder |
//! | 4 | [`Request`] | a request for one block |
//! | 5 | [`Response`] | the answer to a `Request` |
//! | 6 | [`BlockListRequest`] | a request for a whole block list by its hash |
//! | 7 | [`BlockList`] | one part of the answer to a `BlockListRequest` |
//! | 8 | `Ping` | nothing (empty body): keeps an idle connection alive |
//! | 9 | `Close` | `string reason`: why the sender is closing |
//!
//! Type 0 and types 10 to 255 are undefined in version 1: receiving one is an error.
//!
//! ## Hello (1)
//! ```text
//! varint32 protocol_version   the highest version the sender speaks (2)
//! string   device_name        the sender's name for itself
//! string   client_name        "shoal"
//! string   client_version     the program's version, e.g. "0.1.0"
//! ```
//! The one body that may carry bytes after its fields: a later version may append fields
//! to Hello (and only to Hello), which a version 1 receiver ignores. Its frame is at most
//! [`MAX_HELLO_FRAME_LEN`] bytes in every version, and never has a flag set.
//!
//! ## ClusterConfig (2)
//! ```text
//! list<folder> folders        at most MAX_CLUSTER_FOLDERS (4096)
//! folder = string id, string label, list<device> devices
//! device = device_id id, string name, list<string> addresses (each non-empty),
//!          varint index_id, varint max_sequence
//! ```
//! At most [`MAX_CLUSTER_DEVICES`] (16,384) devices and [`MAX_CLUSTER_ADDRESSES`] (16,384)
//! addresses in the whole message. Lists only the folders the sender shares with the
//! receiver; per folder, every device the sender shares it with, itself and the receiver
//! included. For a device `D`, `index_id` and `max_sequence` say how much of `D`'s index
//! of the folder the sender holds: for the sender itself, its current index ID and highest
//! sequence; for any other device, the index ID and highest sequence it has received of
//! `D`'s index (0 and 0 when none). A folder listed that the receiver does not share with
//! the sender is an offer (shown as a pending folder), never synced until accepted.
//!
//! ## Index (3)
//! ```text
//! string     folder
//! varint     index_id         the sender's current index ID for the folder, never 0
//! bool       last             the sender had nothing more to send when it built this
//! list<file> files            at most MAX_INDEX_FILES (10,000); each `sequence` greater
//!                             than the one before, the first at least 1
//! ```
//! At most [`MAX_INDEX_EDITS`] (65,536) delta edits in the whole message. A `file` (an
//! index entry, [`WireFile`]):
//! ```text
//! string        name            relative, "/"-separated, NFC (see "Names")
//! u8            type            0 file, 1 directory, 2 symlink
//! u8            flags           bit 0 deleted, bit 1 invalid; other bits must be 0
//! varint        size            bytes of a file's content
//! varint32      permissions     Unix permission bits, at most 0o7777
//! zigzag        modified_ns     modification time, ns since the Unix epoch
//! u64be         modified_by     short ID of the device that made this version
//! list<counter> version         at most MAX_VECTOR_COUNTERS (4096)
//!               counter = u64be short ID, varint value
//! varint        sequence        the sender's per-folder sequence number of this entry
//! string        symlink_target  empty unless type is symlink
//! u8            blocks form, then:
//!   0 full:     list<block> blocks      at most MAX_INLINE_BLOCKS (65,536)
//!   1 delta:    hash base, hash result, list<edit> edits
//!               edit = varint32 at, varint32 remove, list<block> insert;
//!               at most MAX_INLINE_BLOCKS blocks inserted by one entry's edits
//!   2 ref:      hash list
//! ```
//! A short ID is the first 8 bytes of a device ID read as a big-endian u64. A version
//! vector's counters may come in any order; a receiver keeps the highest counter per
//! device and drops zeros. `invalid` means "don't take this from me": the entry is
//! ignored or unreadable on the sender. A receiver never pulls its content from that
//! sender and never replaces or deletes anything because of it (not even for an invalid
//! tombstone); Shoal forgets what it held of that name from that sender and counts the
//! sequence as received. Shoal itself sends no invalid entry in version 1: a name that
//! becomes ignored or unreadable keeps its last indexed entry (the scanner infers no
//! deletion from it, so peers delete nothing), and a request for data it no longer holds
//! as indexed is answered with code 2 or 4.
//!
//! Entry rules, checked by [`WireFile::into_file_info`] (an entry that breaks one is not
//! stored: the receiver skips and logs it): the name passes [`validate_name`]; only a
//! symlink has a symlink target; a directory, a symlink and a deleted entry carry an empty
//! `full` list; a live file's block sizes add up to its `size` (an `invalid` one may carry
//! no blocks at all).
//!
//! ## Request (4) and Response (5)
//! ```text
//! Request  = varint id, string folder, string name, varint offset,
//!            varint32 size (1 ..= MAX_BLOCK_SIZE; offset + size < 2^64), hash hash
//! Response = varint id, u8 code, list<u8> data (at most MAX_BLOCK_SIZE bytes,
//!            empty unless code is 0)
//! code: 0 ok, 1 generic error, 2 no such file, 3 invalid, 4 changed
//! ```
//! One block per request; many in flight, at most [`MAX_REQUESTS_IN_FLIGHT`] (1024)
//! unanswered per connection. The requester picks ids unique among its unanswered
//! requests; the responder answers each request exactly once, in any order. The responder
//! validates the name (an invalid one: code 2), answers only from folders shared with the
//! requester (others: code 2, not told apart from a missing file), and may answer from
//! any data it holds with that hash. Data that no longer matches its index is answered
//! with code 4 and makes the responder rescan. The requester checks that the data is
//! `size` bytes whose BLAKE3 is `hash`, and discards it otherwise; a response whose id
//! matches no unanswered request is an error.
//!
//! ## BlockListRequest (6) and BlockList (7)
//! ```text
//! BlockListRequest = varint id, string folder, string name, hash list
//! BlockList        = varint id, u8 code, varint32 total (at most MAX_BLOCKS_PER_FILE),
//!                    list<block> blocks (at most min(total, MAX_INLINE_BLOCKS))
//! ```
//! Asks for the block list whose `blocks_hash` is `list` (see the next section); `name` is
//! the entry that named it, where the responder looks first, though any list with that
//! hash in a folder shared with the requester will do. The answer is one or more
//! `BlockList` parts with the request's id, in order, every part announcing the same
//! `total`, each but an empty list's carrying at least one block, until `total` blocks
//! have come; the requester checks the `blocks_hash` of the whole. A refusal is one part
//! with a non-zero code (same codes as `Response`), `total` 0 and no blocks. At most
//! [`MAX_LIST_REQUESTS_IN_FLIGHT`] (16) unanswered per connection.
//!
//! # Index exchange
//!
//! Every change to a folder on a device takes the next number of that device's
//! per-folder **sequence**, and each folder index has a random non-zero 64-bit **index
//! ID**, replaced when the device's database is reset. An `Index` message carries entries
//! of the sender's own index, in increasing sequence order within and across messages of
//! one index ID, each at its latest version (a file changed twice is sent once, at its
//! newest sequence). A full index is just one sent from sequence 0.
//!
//! - **Where to start.** On a `ClusterConfig` from the peer, for each folder both share,
//!   a side looks at the peer's entry for the side's *own* device. If its `index_id` is
//!   the side's current index ID, the side sends only entries with a sequence above that
//!   `max_sequence`; otherwise all of them.
//! - **Batches.** Entries go in batches of at most `MAX_INDEX_FILES` entries, and a sender
//!   closes a batch once it holds about [`INDEX_BATCH_BYTES`] (1 MiB) of entries (one large
//!   entry may go alone), so a folder of 1 M files is hundreds of messages, never one
//!   giant allocation. [`IndexBatch`] packs them. `last` is set on the batch that empties
//!   what the sender had to send: the receiver is up to date as of then. Later changes
//!   go as they happen, in batches that end with `last` set.
//! - **A reset.** A receiver records, per peer and folder, the index ID and highest
//!   sequence it holds of the peer's index. An `Index` with another index ID means the
//!   peer's index was reset: the receiver drops all it holds of that index and takes the
//!   message as the start of a full one. An entry whose sequence is not above the highest
//!   one held of the same index ID is an error.
//! - **Scope.** An `Index`, `Request` or `BlockListRequest` for a folder the receiver does
//!   not share with the sender is ignored (a request: answered with code 2), never an
//!   error: configurations change on both sides at different times.
//! - **Resumption.** A receiver counts an entry as held (for `max_sequence` in its next
//!   `ClusterConfig`) only once stored, so an entry still waiting for its block list when
//!   the connection drops is sent again.
//!
//! # Delta block lists
//!
//! A file's block list is identified by its `blocks_hash` (BLAKE3 over each block's 32
//! hash bytes and 4 size bytes, little-endian, in order: [`file::blocks_hash`]). A new
//! version of a big file changes a few blocks of a list of thousands, so an entry may
//! carry its list in one of three forms:
//!
//! - `full`: the whole list, when it has at most `MAX_INLINE_BLOCKS` blocks.
//! - `delta`: `edits` applied to the list whose hash is `base`, which must build the list
//!   whose hash is `result`. Each edit removes `remove` blocks at index `at` of the base
//!   and inserts `insert` there. Edits come in base order and do not overlap (each `at` is
//!   at least the previous `at + remove`), stay within the base, each remove or insert
//!   something, and the result holds at most [`MAX_BLOCKS_PER_FILE`] blocks. A sender uses
//!   as base a list it knows the receiver holds, normally that of the entry's previous
//!   version sent on this index ID ([`WireFile::from_file_info`] takes it and picks the
//!   smaller form; [`diff_blocks`] computes the edits).
//! - `ref`: just the list's hash, when the receiver is known to hold that list (the
//!   content did not change, or a file was renamed or copied), or when the list is longer
//!   than `MAX_INLINE_BLOCKS`.
//!
//! The receiver looks `base` (then `result`) up among every block list it holds, of any
//! file. If it holds neither, it keeps the entry aside, asks for `result` with a
//! `BlockListRequest`, and stores the entry once the list has come; a refusal means the
//! sender's file has changed again, and its newer entry is on its way. A delta whose
//! edits break the rules above or build a list with another hash is an error.
//!
//! # Names
//!
//! A name from a peer is used only after [`validate_name`]: not empty, at most 4096
//! bytes, components of at most 255 bytes, no NUL, no backslash, relative, no `.`, `..` or
//! empty component, not `.shoal` or under it, no component starting with `.shoal-tmp-`,
//! not `.shoalignore` at the root, and in Unicode NFC. Senders send only such names.
//!
//! # Versions and extensions
//!
//! A Hello carries the highest version its sender speaks ([`PROTOCOL_VERSION`]); both
//! sides then speak `min(ours, theirs)`, and a side that cannot speak it (below its
//! [`MIN_PROTOCOL_VERSION`]) sends `Close` with the reason and closes
//! ([`Hello::negotiate`]). A new version may add message types (taking the next free type
//! number), flags, block-list forms, response codes or fields at the end of a body; a
//! side sends them only when the negotiated version defines them, so a receiver treats
//! anything its negotiated version does not define as an error. The frame header and the
//! Hello body (bar appended fields) never change.
//!
//! | version | adds |
//! |---|---|
//! | 1 | everything in this document but compression |
//! | 2 | flag bit 0, compressed bodies ([Compression](#compression-version-2)) |
//!
//! The TLS ALPN name stays `shoal/1`: it names the protocol family, whose version the
//! Hello negotiates.
//!
//! # Limits
//!
//! | limit | value | on |
//! |---|---|---|
//! | [`MAX_FRAME_LEN`] | 16 MiB | every frame (bytes after the length) |
//! | [`MAX_HELLO_FRAME_LEN`] | 16 KiB | the first frame of a connection |
//! | [`MAX_STRING_LEN`] | 4096 bytes | every string |
//! | [`MAX_BLOCK_SIZE`] | 128 KiB | a block, a request, a response's data |
//! | [`max_body_len`] | 128 KiB + 14 / 16 MiB − 2 | a compressed body once expanded (`Response` / others) |
//! | [`MAX_COMPRESSION_RATIO`] | 255 | a compressed body's size ÷ its LZ4 bytes |
//! | [`MAX_INLINE_BLOCKS`] | 65,536 | blocks in one entry or one `BlockList` part |
//! | [`MAX_BLOCKS_PER_FILE`] | 4,194,304 | blocks in one file's list |
//! | [`MAX_VECTOR_COUNTERS`] | 4096 | counters in one version vector |
//! | [`MAX_INDEX_FILES`] | 10,000 | entries in one `Index` |
//! | [`MAX_INDEX_EDITS`] | 65,536 | delta edits in one `Index` |
//! | [`INDEX_BATCH_BYTES`] | 1 MiB | a sender's target size for a batch (not checked) |
//! | [`MAX_CLUSTER_FOLDERS`] | 4096 | folders in one `ClusterConfig` |
//! | [`MAX_CLUSTER_DEVICES`] | 16,384 | devices in one `ClusterConfig` |
//! | [`MAX_CLUSTER_ADDRESSES`] | 16,384 | addresses in one `ClusterConfig` |
//! | [`MAX_REQUESTS_IN_FLIGHT`] | 1024 | unanswered `Request`s per connection |
//! | [`MAX_LIST_REQUESTS_IN_FLIGHT`] | 16 | unanswered `BlockListRequest`s per connection |
//!
//! The count limits keep what a frame decodes into within a few times its size.
//!
//! # Errors
//!
//! Everything from a peer is untrusted. Any [`ProtocolError`] from the [`FrameDecoder`]
//! (a frame over its limit, an unknown type or flag, a malformed or badly compressed
//! body, Hello rules) closes
//! that connection, and only that one; nothing a peer sends can make this module panic
//! or allocate more than the bytes it sent justify. Errors of one entry
//! ([`ProtocolError::InvalidName`], [`ProtocolError::InvalidEntry`]) skip that entry;
//! [`ProtocolError::UnknownBase`] asks for a block list. [`encode`] refuses to build a
//! frame the peer would have to refuse ([`ProtocolError::Unsendable`]).

mod codec;
pub mod diff;
pub mod file;
pub mod frame;
pub mod message;
pub mod name;
#[cfg(test)]
mod testing;
pub mod vector;
pub mod wirefile;

pub use diff::{BlockEdit, apply_edits, diff_blocks};
pub use file::{BlockHash, BlockInfo, FileInfo, FileType};
#[cfg(test)]
pub(crate) use frame::decode_message;
pub use frame::{
    COMPRESSION_VERSION, CompressionStats, FLAG_COMPRESSED, FRAME_HEADER_LEN, FrameDecoder,
    FrameEncoder, MAX_COMPRESSION_RATIO, encode, max_body_len,
};
pub use message::{
    BlockList, BlockListAssembler, BlockListRequest, ClusterConfig, ClusterDevice, ClusterFolder,
    Hello, Index, Message, MessageType, Request, Response, ResponseCode, block_list_parts,
    negotiate,
};
pub use name::{NameError, validate_name};
pub use vector::{Counter, Ordering as VectorOrdering, Vector};
pub use wirefile::{IndexBatch, WireBlocks, WireFile};

use std::time::Duration;

/// The protocol version this build speaks (the highest).
pub const PROTOCOL_VERSION: u32 = 2;
/// The lowest version this build still speaks (version 1: no compression).
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// Largest frame, counting the type, flags and body (not the 4 length bytes).
pub const MAX_FRAME_LEN: u32 = 16 << 20;
/// Largest first frame (the Hello): small, as it may come from a device not yet trusted.
pub const MAX_HELLO_FRAME_LEN: u32 = 16 << 10;
/// Longest string, in bytes.
pub const MAX_STRING_LEN: usize = 4096;
/// Largest block: the chunker's maximum chunk size must not exceed it.
pub const MAX_BLOCK_SIZE: u32 = 128 << 10;
/// Most blocks one entry carries (a full list, or a delta's insertions), and one
/// `BlockList` part: about 2.3 MB on the wire.
pub const MAX_INLINE_BLOCKS: usize = 65_536;
/// Most blocks in one file's list: 128 GiB at 32 KiB a block, 256 GiB at 64 KiB.
pub const MAX_BLOCKS_PER_FILE: usize = 1 << 22;
/// Most counters in one version vector.
pub const MAX_VECTOR_COUNTERS: usize = 4096;
/// Most entries in one `Index` message.
pub const MAX_INDEX_FILES: usize = 10_000;
/// Most delta edits in one `Index` message, all entries together.
pub const MAX_INDEX_EDITS: usize = 65_536;
/// A sender's target for the entries of one `Index` message, in encoded bytes.
pub const INDEX_BATCH_BYTES: usize = 1 << 20;
/// Most folders in one `ClusterConfig`.
pub const MAX_CLUSTER_FOLDERS: usize = 4096;
/// Most device entries in one `ClusterConfig`, all folders together.
pub const MAX_CLUSTER_DEVICES: usize = 16_384;
/// Most addresses in one `ClusterConfig`, all devices together.
pub const MAX_CLUSTER_ADDRESSES: usize = 16_384;
/// Most unanswered `Request`s a side may have on one connection.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 1024;
/// Most unanswered `BlockListRequest`s a side may have on one connection.
pub const MAX_LIST_REQUESTS_IN_FLIGHT: usize = 16;
/// A side that has sent nothing for this long sends a `Ping`.
pub const PING_INTERVAL: Duration = Duration::from_secs(60);
/// A side that has received nothing for this long closes the connection.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(180);

const _: () = {
    assert!(MAX_INLINE_BLOCKS <= MAX_BLOCKS_PER_FILE);
    assert!(MAX_BLOCKS_PER_FILE <= u32::MAX as usize);
    // The largest Hello fits its frame: a version and three strings at their limit.
    assert!(MAX_HELLO_FRAME_LEN as usize >= 2 + 5 + 3 * (2 + MAX_STRING_LEN));
    // A response with a whole block fits a frame with room to spare.
    assert!((MAX_BLOCK_SIZE as usize) * 2 < MAX_FRAME_LEN as usize);
    // An index batch at its target plus one entry at its largest fits a frame.
    assert!(
        INDEX_BATCH_BYTES + MAX_INLINE_BLOCKS * 36 + MAX_INDEX_EDITS * 12 < MAX_FRAME_LEN as usize
    );
};

/// Why a frame, a message, an entry or a block list from a peer cannot be used, or why a
/// message cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the peer announced a frame of {len} bytes, more than the limit of {max}")]
    FrameTooLarge { len: u32, max: u32 },
    #[error("the peer announced a frame of {len} bytes, too short for its type and flags")]
    FrameTooShort { len: u32 },
    #[error("the peer sent message type {0}, which this protocol version does not define")]
    UnknownMessageType(u8),
    #[error(
        "the peer sent a {message} with flags {flags:#04x}, which this version does not define"
    )]
    UnknownFlags { message: &'static str, flags: u8 },
    #[error("the peer sent a {got} before its Hello")]
    ExpectedHello { got: &'static str },
    #[error("the peer sent a second Hello")]
    DuplicateHello,
    #[error("the peer sent a malformed {message}: {detail}")]
    Malformed {
        message: &'static str,
        detail: String,
    },
    #[error("cannot send this {message}: {detail}")]
    Unsendable {
        message: &'static str,
        detail: String,
    },
    #[error(
        "the peer speaks protocol version {theirs}, older than version {min}, the oldest this Shoal speaks: upgrade the older device"
    )]
    UnsupportedVersion { theirs: u32, min: u32 },
    #[error("the peer sent a block list delta that cannot be applied: {0}")]
    BadEdits(String),
    #[error(
        "the block list {result:?} (or its delta base {base:?}) is not held here: ask the peer for it with a BlockListRequest"
    )]
    UnknownBase { base: BlockHash, result: BlockHash },
    #[error(
        "a block list built or fetched for an entry has hash {got:?}, not the {expected:?} the peer announced"
    )]
    ListMismatch { expected: BlockHash, got: BlockHash },
    #[error("file name {name:?} from the peer {source}")]
    InvalidName {
        name: String,
        #[source]
        source: NameError,
    },
    #[error("the peer's entry for {name:?} is inconsistent: {detail}")]
    InvalidEntry { name: String, detail: String },
    #[error("the peer refused a block list request: {code:?}")]
    BlockListRefused { code: ResponseCode },
    #[error("the peer's answer to block list request {id} is wrong: {detail}")]
    BadBlockList { id: u64, detail: String },
}
