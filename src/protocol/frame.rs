//! Frames: a length prefix, a type byte, a flags byte, a body. Sans IO: bytes in, messages
//! out (see "Frames" and "Compression" in the module docs).
//!
//! A frame's declared length is checked against the limit as soon as its 4 bytes are
//! here, before anything is allocated for it: the decoder only ever holds bytes the peer
//! has actually sent, at most one incomplete frame plus the last read. A compressed body's
//! declared size is checked against the limit of its message type and against what its
//! compressed bytes can expand to, before anything is allocated for it.

use super::codec::{Reader, Writer};
use super::message::response_code;
use super::{
    MAX_BLOCK_SIZE, MAX_FRAME_LEN, MAX_HELLO_FRAME_LEN, Message, MessageType, ProtocolError,
    Response, ResponseCode,
};

/// Bytes before the body: the length (4), the type (1), the flags (1).
pub const FRAME_HEADER_LEN: usize = 6;

/// Flag bit 0: the body is compressed (protocol version 2 and later; see "Compression").
pub const FLAG_COMPRESSED: u8 = 0x01;

/// The first protocol version that defines [`FLAG_COMPRESSED`].
pub const COMPRESSION_VERSION: u32 = 2;

/// A compressed body expands to at most this many times its LZ4 bytes: LZ4 itself cannot
/// do better (a length byte of 255 is the most any one input byte stands for).
pub const MAX_COMPRESSION_RATIO: usize = 255;

/// Bodies shorter than this are never compressed: too little to gain.
pub const MIN_COMPRESS_LEN: usize = 256;

/// A body longer than four times this is compressed only if a window of this many bytes
/// from its middle compresses first: incompressible data costs that window, not the body.
pub const COMPRESS_SAMPLE_LEN: usize = 2048;

/// Flag bits a version understands.
fn known_flags(version: u32) -> u8 {
    if version >= COMPRESSION_VERSION {
        FLAG_COMPRESSED
    } else {
        0
    }
}

/// The largest body of `kind` once decompressed: a `Response` holds one block and its
/// header (id ≤ 10 bytes, code 1, data length ≤ 3), anything else what a frame holds.
pub fn max_body_len(kind: MessageType) -> usize {
    match kind {
        MessageType::Response => MAX_BLOCK_SIZE as usize + 14,
        _ => MAX_FRAME_LEN as usize - 2,
    }
}

/// Appends `msg` as one uncompressed frame to `out`. Refuses (leaving `out` as it was) a
/// message that breaks a limit of the spec, so Shoal never sends what its peer must refuse.
pub fn encode(msg: &Message, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, msg.kind().code(), 0]);
    if let Err(e) = msg.encode_body(out) {
        out.truncate(start);
        return Err(e);
    }
    finish_frame(msg.kind(), out, start, 0)
}

/// Writes the length of the frame that starts at `out[start]` and is followed by `extra`
/// bytes not in `out`; refuses (truncating `out` to `start`) a frame over its limit.
fn finish_frame(
    kind: MessageType,
    out: &mut Vec<u8>,
    start: usize,
    extra: usize,
) -> Result<(), ProtocolError> {
    let len = out.len() - start - 4 + extra;
    let max = if kind == MessageType::Hello {
        MAX_HELLO_FRAME_LEN
    } else {
        MAX_FRAME_LEN
    };
    match u32::try_from(len) {
        Ok(len) if len <= max => {
            out[start..start + 4].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        _ => {
            out.truncate(start);
            Err(ProtocolError::Unsendable {
                message: kind.name(),
                detail: format!("the frame would be {len} bytes, more than the limit of {max}"),
            })
        }
    }
}

/// Encodes the frames of one connection: compressed where it pays once both sides speak
/// [`COMPRESSION_VERSION`], and a block's data left out of the buffer when it travels as
/// is, for a vectored write ([`Self::encode_split`]).
pub struct FrameEncoder {
    compress: bool,
    table: lz4_flex::block::CompressTable,
    /// Room for LZ4's output, reused.
    lz: Vec<u8>,
    stats: CompressionStats,
}

/// What compression did on one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompressionStats {
    /// Frames sent compressed.
    pub frames: u64,
    /// Their bodies' bytes before compression.
    pub raw_bytes: u64,
    /// Their bodies' bytes on the wire (length prefix included).
    pub sent_bytes: u64,
}

impl std::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameEncoder")
            .field("compress", &self.compress)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl FrameEncoder {
    /// For a connection on protocol `version` (the negotiated one).
    pub fn new(version: u32) -> Self {
        Self {
            compress: version >= COMPRESSION_VERSION,
            table: lz4_flex::block::CompressTable::default(),
            lz: Vec::new(),
            stats: CompressionStats::default(),
        }
    }

    pub fn stats(&self) -> CompressionStats {
        self.stats
    }

    /// Appends `msg` as one frame to `out`, compressed if that pays.
    pub fn encode(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        if self.encode_split(msg, out)?
            && let Message::Response(r) = msg
        {
            out.extend_from_slice(&r.data);
        }
        Ok(())
    }

    /// Appends `msg` as one frame to `out`, except, when this returns true, the block data
    /// of a `Response` sent uncompressed: the frame is then `out`'s new bytes followed by
    /// `Response::data` as is, which saves copying the block (write both with one vectored
    /// write). On an error `out` is left as it was.
    pub fn encode_split(
        &mut self,
        msg: &Message,
        out: &mut Vec<u8>,
    ) -> Result<bool, ProtocolError> {
        if let Message::Response(r) = msg
            && r.code == ResponseCode::Ok
            && !(self.compress && self.worth_trying(&r.data))
        {
            let start = out.len();
            out.extend_from_slice(&[0, 0, 0, 0, MessageType::Response.code(), 0]);
            let w = &mut Writer::new(out, "Response");
            w.varint(r.id);
            w.u8(r.code as u8);
            if let Err(e) = w.bytes_len("block data", r.data.len(), MAX_BLOCK_SIZE as usize) {
                out.truncate(start);
                return Err(e);
            }
            finish_frame(MessageType::Response, out, start, r.data.len())?;
            return Ok(true);
        }
        let start = out.len();
        encode(msg, out)?;
        if self.compress && msg.kind() != MessageType::Hello {
            let body = start + FRAME_HEADER_LEN;
            let try_it = match msg {
                // The data was sampled above.
                Message::Response(r) => r.code == ResponseCode::Ok,
                _ => self.worth_trying(&out[body..]),
            };
            if try_it {
                self.compress_frame(out, start);
            }
        }
        Ok(false)
    }

    /// Whether compressing `data` may pay: long enough, and for long data, a window from
    /// its middle compresses to at most 95 %.
    fn worth_trying(&mut self, data: &[u8]) -> bool {
        if data.len() < MIN_COMPRESS_LEN {
            return false;
        }
        if data.len() <= 4 * COMPRESS_SAMPLE_LEN {
            return true;
        }
        let at = data.len() / 2 - COMPRESS_SAMPLE_LEN / 2;
        let sample = &data[at..at + COMPRESS_SAMPLE_LEN];
        self.lz4(sample)
            .is_some_and(|n| n * 100 <= COMPRESS_SAMPLE_LEN * 95)
    }

    /// LZ4 of `data` into `self.lz`; the compressed length.
    fn lz4(&mut self, data: &[u8]) -> Option<usize> {
        let need = lz4_flex::block::get_maximum_output_size(data.len());
        if self.lz.len() < need {
            self.lz.resize(need, 0);
        }
        lz4_flex::block::compress_into_with_table(data, &mut self.lz[..need], &mut self.table).ok()
    }

    /// Replaces the body of the frame at `out[start..]` by its compressed form when that
    /// is at most 90 % of it (and within LZ4's ratio, which a receiver checks).
    fn compress_frame(&mut self, out: &mut Vec<u8>, start: usize) {
        let body = start + FRAME_HEADER_LEN;
        let raw = out.len() - body;
        let Some(n) = self.lz4(&out[body..]) else {
            return;
        };
        let mut prefix = Vec::with_capacity(10);
        Writer::new(&mut prefix, "").varint(raw as u64);
        let sent = prefix.len() + n;
        if sent * 10 > raw * 9 || raw > n * MAX_COMPRESSION_RATIO {
            return;
        }
        out.truncate(body);
        out.extend_from_slice(&prefix);
        out.extend_from_slice(&self.lz[..n]);
        out[start + 5] |= FLAG_COMPRESSED;
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        self.stats.frames += 1;
        self.stats.raw_bytes += raw as u64;
        self.stats.sent_bytes += sent as u64;
    }
}

/// The decoder's buffer grows in steps of this, and a read is offered at least a quarter
/// of it.
const READ_CHUNK: usize = 64 << 10;
/// A buffer or decompression scratch larger than this is released once empty (after a
/// rare big frame, an idle connection should not keep megabytes).
const KEEP_BUFFER: usize = 1 << 20;

/// Turns the bytes of one connection into messages, as they arrive.
///
/// Enforces the connection's framing rules: the first frame must be a `Hello` of at most
/// [`MAX_HELLO_FRAME_LEN`] bytes, no later frame may be a `Hello`, no frame may exceed
/// [`MAX_FRAME_LEN`], and flags must be defined by the connection's version (1 until
/// [`Self::set_version`]). After an error the decoder returns that error forever: the
/// connection must be closed.
///
/// Bytes go in either by [`Self::push`] or, without a copy, by reading straight into
/// [`Self::read_buf`] and then calling [`Self::filled`]. The data of a large uncompressed
/// `Response` is read straight into the buffer the message will own, once the frame's
/// header and the response's header (at most 14 bytes) are here: that allocation (at most
/// [`MAX_BLOCK_SIZE`]) is the one made ahead of the bytes that fill it.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Received bytes live in `buf[start..end]`; the rest of `buf` is room for the next read.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A block being read into its own buffer.
    block: Option<PendingBlock>,
    hello_seen: bool,
    version: u32,
    /// Where compressed bodies are expanded, reused.
    scratch: Vec<u8>,
    failed: Option<ProtocolError>,
}

/// The rest of a large uncompressed `Response` whose headers have been read.
#[derive(Debug)]
struct PendingBlock {
    id: u64,
    data: Vec<u8>,
    /// Bytes of `data` received.
    filled: usize,
}

/// A `Response` body's fields before its data take at most this many bytes: the id (a
/// varint of at most 10 bytes), the code (1) and the data's length (at most 3 bytes for
/// [`MAX_BLOCK_SIZE`]).
const RESPONSE_HEADER_MAX: usize = 14;

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The protocol version negotiated with the peer: decides which flags are accepted.
    pub fn set_version(&mut self, version: u32) {
        self.version = version;
    }

    /// Room for the peer's next bytes: read into it, then call [`Self::filled`]. Call
    /// [`Self::next_message`] until it returns `Ok(None)` before reading more, so the
    /// buffer only grows to hold one incomplete frame.
    ///
    /// While a large frame (a block) is coming, the room ends where that frame ends, and
    /// between frames it is 16 KiB: once a block is decoded the
    /// buffer is empty and the next frame starts at its beginning, so a stream of blocks
    /// is never moved within the buffer. The buffer grows by doubling, only when received
    /// bytes fill it.
    pub fn read_buf(&mut self) -> &mut [u8] {
        if self.block_wants_bytes() {
            return match &mut self.block {
                Some(b) => &mut b.data[b.filled..],
                None => &mut [],
            };
        }
        let min_room = READ_CHUNK / 4;
        if let Some(frame_end) = self.large_frame_end()
            && frame_end > self.buf.len()
            && self.start > 0
        {
            self.compact();
        }
        if self.buf.len() - self.end < min_room {
            self.compact();
            if self.buf.len() - self.end < min_room {
                let len = (self.buf.len() * 2).max(READ_CHUNK);
                self.buf.resize(len, 0);
            }
        }
        let stop = match self.large_frame_end() {
            Some(frame_end) if frame_end > self.end => frame_end.min(self.buf.len()),
            // Between frames, a modest read: if a large frame starts, its length is then
            // known before much of it has been read.
            _ if self.buffered() < 4 => (self.end + min_room).min(self.buf.len()),
            _ => self.buf.len(),
        };
        &mut self.buf[self.end..stop]
    }

    /// Whether the next bytes belong to a block being read into its own buffer (once it is
    /// complete, what follows goes to `buf` until the block is taken).
    fn block_wants_bytes(&self) -> bool {
        self.block.as_ref().is_some_and(|b| b.filled < b.data.len())
    }

    /// Where the frame in progress ends in `buf`, if its length is known and large.
    fn large_frame_end(&self) -> Option<usize> {
        let avail = &self.buf[self.start..self.end];
        let len = u32::from_be_bytes(avail.get(..4)?.try_into().ok()?) as usize;
        (4 + len >= READ_CHUNK / 4).then_some(self.start + 4 + len)
    }

    /// Moves the undecoded bytes to the start of the buffer.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// `n` bytes were read into [`Self::read_buf`].
    pub fn filled(&mut self, n: usize) {
        if self.block_wants_bytes()
            && let Some(b) = &mut self.block
        {
            b.filled = (b.filled + n).min(b.data.len());
            return;
        }
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Adds bytes received from the peer (a copy; see [`Self::read_buf`]).
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = self.read_buf();
            let n = room.len().min(bytes.len());
            room[..n].copy_from_slice(&bytes[..n]);
            self.filled(n);
            bytes = &bytes[n..];
        }
    }

    /// Bytes received and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.end - self.start + self.block.as_ref().map_or(0, |b| b.filled)
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.next_inner() {
            Err(e) => {
                self.failed = Some(e.clone());
                self.block = None;
                self.buf = Vec::new();
                self.scratch = Vec::new();
                self.start = 0;
                self.end = 0;
                Err(e)
            }
            ok => ok,
        }
    }

    fn next_inner(&mut self) -> Result<Option<Message>, ProtocolError> {
        if let Some(b) = &self.block {
            if b.filled < b.data.len() {
                return Ok(None);
            }
            return Ok(self.block.take().map(|b| {
                Message::Response(Response {
                    id: b.id,
                    code: ResponseCode::Ok,
                    data: b.data,
                })
            }));
        }
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]);
        let max = if self.hello_seen {
            MAX_FRAME_LEN
        } else {
            MAX_HELLO_FRAME_LEN
        };
        if len > max {
            return Err(ProtocolError::FrameTooLarge { len, max });
        }
        if len < 2 {
            return Err(ProtocolError::FrameTooShort { len });
        }
        if avail.len() < 4 + 2 {
            return Ok(None);
        }
        // Type and flags are checked before the body is waited for, so garbage fails fast.
        let (code, flags) = (avail[4], avail[5]);
        let kind = MessageType::from_code(code).ok_or(ProtocolError::UnknownMessageType(code))?;
        // The Hello is read before any version is agreed: it never carries a flag.
        let known = if kind == MessageType::Hello {
            0
        } else {
            known_flags(self.version)
        };
        if flags & !known != 0 {
            return Err(ProtocolError::UnknownFlags {
                message: kind.name(),
                flags,
            });
        }
        match (self.hello_seen, kind) {
            (false, MessageType::Hello) => {}
            (false, _) => return Err(ProtocolError::ExpectedHello { got: kind.name() }),
            (true, MessageType::Hello) => return Err(ProtocolError::DuplicateHello),
            (true, _) => {}
        }
        let end = 4 + len as usize;
        if avail.len() < end {
            if kind == MessageType::Response
                && flags == 0
                && end >= READ_CHUNK / 4
                && avail.len() >= FRAME_HEADER_LEN + RESPONSE_HEADER_MAX
            {
                self.start_block(end)?;
            }
            return Ok(None);
        }
        let body = &avail[FRAME_HEADER_LEN..end];
        let msg = if flags & FLAG_COMPRESSED != 0 {
            let raw = decompress(kind, body, &mut self.scratch)?;
            let msg = Message::decode_body(kind, raw);
            if self.scratch.len() > KEEP_BUFFER {
                self.scratch = Vec::new();
            }
            msg?
        } else {
            Message::decode_body(kind, body)?
        };
        self.hello_seen = true;
        self.start += end;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > KEEP_BUFFER {
                self.buf = Vec::new();
            }
        }
        Ok(Some(msg))
    }
}

impl FrameDecoder {
    /// Reads the headers of the large uncompressed `Response` in progress, which ends at
    /// `start + end`, and moves its data received so far into the block's own buffer: the
    /// rest is read straight into it. The same checks as [`Message::decode_body`].
    fn start_block(&mut self, end: usize) -> Result<(), ProtocolError> {
        let avail = &self.buf[self.start..self.end];
        let head = &avail[FRAME_HEADER_LEN..FRAME_HEADER_LEN + RESPONSE_HEADER_MAX];
        let r = &mut Reader::new(head, "Response");
        let id = r.varint("request id")?;
        let code = response_code(r)?;
        let n = r.varint("block data")?;
        let data_at = FRAME_HEADER_LEN + RESPONSE_HEADER_MAX - r.rest().len();
        if n > u64::from(MAX_BLOCK_SIZE) {
            return Err(r.error(format!(
                "block data is {n} bytes, more than the limit of {MAX_BLOCK_SIZE}"
            )));
        }
        if code != ResponseCode::Ok {
            return Err(r.error(format!("data with code {code:?}")));
        }
        if data_at as u64 + n != end as u64 {
            return Err(r.error(format!(
                "the frame holds {} bytes after the response's header, its data length says {n}",
                end - data_at
            )));
        }
        let mut data = vec![0u8; n as usize];
        let have = avail.len() - data_at;
        data[..have].copy_from_slice(&avail[data_at..]);
        self.block = Some(PendingBlock {
            id,
            data,
            filled: have,
        });
        self.start = 0;
        self.end = 0;
        Ok(())
    }
}

/// Expands a compressed body of a `kind` frame into `scratch`; the body's bytes. The
/// declared size is checked before anything is allocated, and must come out exactly.
fn decompress<'s>(
    kind: MessageType,
    body: &[u8],
    scratch: &'s mut Vec<u8>,
) -> Result<&'s [u8], ProtocolError> {
    let r = &mut Reader::new(body, kind.name());
    let raw = r.varint("decompressed size")?;
    let lz = r.rest();
    let max = max_body_len(kind).min(lz.len().saturating_mul(MAX_COMPRESSION_RATIO));
    if raw > max as u64 {
        return Err(r.error(format!(
            "a compressed body claims {raw} bytes, more than the {max} its type and its {} \
             compressed bytes allow",
            lz.len()
        )));
    }
    let raw = raw as usize;
    if scratch.len() < raw {
        scratch.resize(raw, 0);
    }
    match lz4_flex::block::decompress_into(lz, &mut scratch[..raw]) {
        Ok(n) if n == raw => Ok(&scratch[..raw]),
        Ok(n) => Err(r.error(format!(
            "a compressed body expands to {n} bytes, not the {raw} it claims"
        ))),
        Err(e) => Err(r.error(format!("a compressed body does not decompress: {e}"))),
    }
}

/// Decodes one whole frame of any type, outside the connection's ordering rules.
#[cfg(test)]
pub(crate) fn decode_message(frame: &[u8]) -> Result<Message, ProtocolError> {
    let mut d = FrameDecoder {
        hello_seen: frame.get(4) != Some(&MessageType::Hello.code()),
        version: super::PROTOCOL_VERSION,
        ..FrameDecoder::default()
    };
    d.push(frame);
    match d.next_message()? {
        Some(m) if d.buffered() == 0 => Ok(m),
        other => panic!("not one whole frame: {other:?}, {} left", d.buffered()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::{any_message, hello_frame};
    use crate::protocol::{Hello, MAX_STRING_LEN};
    use proptest::prelude::*;

    /// A decoder that has read a Hello.
    fn ready() -> FrameDecoder {
        let mut d = FrameDecoder::new();
        d.push(&hello_frame());
        assert!(matches!(d.next_message(), Ok(Some(Message::Hello(_)))));
        d
    }

    /// A decoder in the state where `msg` may come next.
    fn decoder_for(msg: &Message) -> FrameDecoder {
        match msg {
            Message::Hello(_) => FrameDecoder::new(),
            _ => ready(),
        }
    }

    fn frame(msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        encode(msg, &mut out).expect("encodes");
        out
    }

    #[test]
    fn a_frame_is_decoded_only_once_complete() {
        let msg = Message::Close {
            reason: "bye".into(),
        };
        let bytes = frame(&msg);
        assert_eq!(bytes[..6], [0, 0, 0, 6, 9, 0]);
        let mut d = ready();
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(d.next_message(), Ok(None), "after {i} bytes");
            d.push(&[*b]);
        }
        assert_eq!(d.next_message(), Ok(Some(msg)));
        assert_eq!(d.next_message(), Ok(None));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn several_frames_in_one_push_come_out_in_order() {
        let mut bytes = hello_frame();
        bytes.extend(frame(&Message::Ping));
        bytes.extend(frame(&Message::Close { reason: "x".into() }));
        bytes.extend(&frame(&Message::Ping)[..3]);
        let mut d = FrameDecoder::new();
        d.push(&bytes);
        assert!(matches!(d.next_message(), Ok(Some(Message::Hello(_)))));
        assert_eq!(d.next_message(), Ok(Some(Message::Ping)));
        assert_eq!(
            d.next_message(),
            Ok(Some(Message::Close { reason: "x".into() }))
        );
        assert_eq!(d.next_message(), Ok(None));
        assert_eq!(d.buffered(), 3);
        d.push(&frame(&Message::Ping)[3..]);
        assert_eq!(d.next_message(), Ok(Some(Message::Ping)));
    }

    #[test]
    fn an_oversized_length_is_refused_from_its_four_bytes() {
        let mut d = ready();
        d.push(&(MAX_FRAME_LEN + 1).to_be_bytes());
        assert_eq!(
            d.next_message(),
            Err(ProtocolError::FrameTooLarge {
                len: MAX_FRAME_LEN + 1,
                max: MAX_FRAME_LEN
            })
        );
        // Nothing was allocated for the declared 16 MiB, and the decoder stays failed.
        assert!(d.buf.capacity() < 1024);
        d.push(&[0; 10]);
        assert!(d.next_message().is_err());

        let mut d = ready();
        d.push(&u32::MAX.to_be_bytes());
        assert!(matches!(
            d.next_message(),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        assert!(d.buf.capacity() < 1024);

        // Before Hello the limit is the Hello limit.
        let mut d = FrameDecoder::new();
        d.push(&(MAX_HELLO_FRAME_LEN + 1).to_be_bytes());
        assert!(matches!(
            d.next_message(),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn frame_headers_are_checked() {
        let mut d = ready();
        d.push(&[0, 0, 0, 1, 8]);
        assert_eq!(
            d.next_message(),
            Err(ProtocolError::FrameTooShort { len: 1 })
        );

        let mut d = ready();
        d.push(&[0, 0, 0, 2, 200, 0]);
        assert_eq!(
            d.next_message(),
            Err(ProtocolError::UnknownMessageType(200))
        );
        let mut d = ready();
        d.push(&[0, 0, 0, 2, 0, 0]);
        assert_eq!(d.next_message(), Err(ProtocolError::UnknownMessageType(0)));

        for flags in [FLAG_COMPRESSED, 0x80] {
            let mut d = ready();
            d.push(&[0, 0, 0, 2, 8, flags]);
            assert!(
                matches!(d.next_message(), Err(ProtocolError::UnknownFlags { .. })),
                "{flags}"
            );
        }

        // Trailing bytes after a body.
        let mut d = ready();
        d.push(&[0, 0, 0, 3, 8, 0, 0]);
        assert!(matches!(
            d.next_message(),
            Err(ProtocolError::Malformed { .. })
        ));
    }

    #[test]
    fn hello_comes_first_and_once() {
        let mut d = FrameDecoder::new();
        d.push(&frame(&Message::Ping));
        assert_eq!(
            d.next_message(),
            Err(ProtocolError::ExpectedHello { got: "Ping" })
        );

        let mut d = ready();
        d.push(&hello_frame());
        assert_eq!(d.next_message(), Err(ProtocolError::DuplicateHello));

        // A later version's Hello with fields appended is still read.
        let mut bytes = hello_frame();
        bytes.extend_from_slice(&[1, 2, 3]);
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) + 3;
        bytes[..4].copy_from_slice(&len.to_be_bytes());
        let mut d = FrameDecoder::new();
        d.push(&bytes);
        assert!(matches!(d.next_message(), Ok(Some(Message::Hello(_)))));
    }

    #[test]
    fn messages_over_a_limit_are_not_sent() {
        let mut out = vec![42];
        let long = Message::Close {
            reason: "x".repeat(MAX_STRING_LEN + 1),
        };
        assert!(matches!(
            encode(&long, &mut out),
            Err(ProtocolError::Unsendable { .. })
        ));
        assert_eq!(out, vec![42]);
        let hello = Message::Hello(Hello {
            device_name: "n".repeat(MAX_STRING_LEN),
            client_name: "n".repeat(MAX_STRING_LEN),
            client_version: "n".repeat(MAX_STRING_LEN),
            ..Hello::ours("x")
        });
        assert!(encode(&hello, &mut out).is_ok(), "the largest Hello fits");
    }

    /// Hostile counts: each claims far more elements than the frame could hold.
    #[test]
    fn hostile_counts_are_refused_before_allocating() {
        use crate::protocol::codec::Writer;
        let huge = 1u64 << 40;
        let mut bodies: Vec<(u8, Vec<u8>)> = Vec::new();
        // ClusterConfig with 2^40 folders.
        let mut b = Vec::new();
        Writer::new(&mut b, "t").varint(huge);
        bodies.push((2, b));
        // Index with 2^40 files, and with 9,999 files in a few bytes.
        for n in [huge, 9_999] {
            let mut b = Vec::new();
            let w = &mut Writer::new(&mut b, "t");
            w.str("f", "folder", 100).expect("short");
            w.varint(1);
            w.bool(true);
            w.varint(n);
            b.extend_from_slice(&[0; 64]);
            bodies.push((3, b));
        }
        // A Response claiming 2^40 bytes of data, and one just over the block limit.
        for n in [huge, u64::from(crate::protocol::MAX_BLOCK_SIZE) + 1] {
            let mut b = Vec::new();
            let w = &mut Writer::new(&mut b, "t");
            w.varint(1);
            w.u8(0);
            w.varint(n);
            bodies.push((5, b));
        }
        // A BlockList announcing 2^32 - 1 blocks, and one with 2^40 in this part.
        let mut b = Vec::new();
        let w = &mut Writer::new(&mut b, "t");
        w.varint(1);
        w.u8(0);
        w.varint(u64::from(u32::MAX));
        w.varint(1);
        bodies.push((7, b));
        let mut b = Vec::new();
        let w = &mut Writer::new(&mut b, "t");
        w.varint(1);
        w.u8(0);
        w.varint(10);
        w.varint(huge);
        bodies.push((7, b));
        for (kind, body) in bodies {
            let mut f = ((body.len() + 2) as u32).to_be_bytes().to_vec();
            f.extend_from_slice(&[kind, 0]);
            f.extend_from_slice(&body);
            let mut d = ready();
            d.push(&f);
            let got = d.next_message();
            assert!(
                matches!(got, Err(ProtocolError::Malformed { .. })),
                "type {kind}: {got:?}"
            );
        }
    }

    /// Frames made by a version 2 encoder, the whole frame in one buffer.
    fn frame_v2(enc: &mut FrameEncoder, msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        enc.encode(msg, &mut out).expect("encodes");
        out
    }

    /// A decoder after a Hello, on version 2.
    fn ready_v2() -> FrameDecoder {
        let mut d = ready();
        d.set_version(COMPRESSION_VERSION);
        d
    }

    fn text_block(n: usize) -> Vec<u8> {
        let line = b"#define SHOAL_EXAMPLE_CONSTANT_NUMBER 42 /* a header line */\n";
        line.iter().copied().cycle().take(n).collect()
    }

    fn random_block(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    fn response(data: Vec<u8>) -> Message {
        Message::Response(crate::protocol::Response {
            id: 7,
            code: crate::protocol::ResponseCode::Ok,
            data,
        })
    }

    /// A compressed frame of `kind` whose body claims `raw` bytes and carries `lz`.
    fn compressed_frame(kind: MessageType, raw: u64, lz: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        crate::protocol::codec::Writer::new(&mut body, "t").varint(raw);
        body.extend_from_slice(lz);
        let mut f = ((body.len() + 2) as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&[kind.code(), FLAG_COMPRESSED]);
        f.extend_from_slice(&body);
        f
    }

    #[test]
    fn compressible_blocks_travel_compressed_and_come_back_whole() {
        let mut enc = FrameEncoder::new(COMPRESSION_VERSION);
        for n in [MIN_COMPRESS_LEN, 5000, 32 << 10, MAX_BLOCK_SIZE as usize] {
            let msg = response(text_block(n));
            let bytes = frame_v2(&mut enc, &msg);
            assert_eq!(bytes[5], FLAG_COMPRESSED, "{n} bytes");
            assert!(bytes.len() * 2 < n, "{n} bytes became {}", bytes.len());
            let mut d = ready_v2();
            d.push(&bytes);
            assert_eq!(d.next_message(), Ok(Some(msg)));
        }
        // The most compressible block there is stays within the ratio a receiver accepts.
        let zeros = response(vec![0; MAX_BLOCK_SIZE as usize]);
        let bytes = frame_v2(&mut enc, &zeros);
        assert_eq!(bytes[5], FLAG_COMPRESSED);
        assert_eq!(decode_message(&bytes), Ok(zeros));
        assert!(enc.stats().frames >= 5);
        assert!(enc.stats().raw_bytes > 10 * enc.stats().sent_bytes);
    }

    #[test]
    fn incompressible_blocks_go_as_they_are_without_a_copy() {
        let mut enc = FrameEncoder::new(COMPRESSION_VERSION);
        for n in [1, MIN_COMPRESS_LEN, 4096, 32 << 10, MAX_BLOCK_SIZE as usize] {
            let data = random_block(n, n as u64 + 1);
            let msg = response(data.clone());
            let mut out = vec![9];
            // Short blocks are tried whole (so they are in `out`); longer ones only sampled.
            let tried = (MIN_COMPRESS_LEN..=4 * COMPRESS_SAMPLE_LEN).contains(&n);
            let split = enc.encode_split(&msg, &mut out).expect("encodes");
            assert_eq!(split, !tried, "{n}");
            assert_eq!(out[0], 9);
            assert_eq!(out[6], 0, "no flag");
            if split {
                out.extend_from_slice(&data);
            }
            assert_eq!(decode_message(&out[1..]), Ok(msg.clone()));
            // And `encode` makes the same whole frame.
            let mut whole = vec![9];
            enc.encode(&msg, &mut whole).expect("encodes");
            assert_eq!(whole, out);
            assert_eq!(whole[1..], frame(&msg)[..]);
        }
        assert_eq!(enc.stats().frames, 0);
        // Half text, half noise: the sample says try, the whole does not save 10 %.
        let mut mixed = text_block(40 << 10);
        mixed.extend(random_block(88 << 10, 3));
        let msg = response(mixed);
        let bytes = frame_v2(&mut enc, &msg);
        assert_eq!(decode_message(&bytes), Ok(msg));
    }

    #[test]
    fn version_1_never_compresses_and_refuses_compressed_frames() {
        let mut enc = FrameEncoder::new(1);
        let msg = response(text_block(32 << 10));
        let bytes = frame_v2(&mut enc, &msg);
        assert_eq!(bytes, frame(&msg));
        let compressed = frame_v2(&mut FrameEncoder::new(COMPRESSION_VERSION), &msg);
        let mut d = ready();
        d.push(&compressed);
        assert_eq!(
            d.next_message(),
            Err(ProtocolError::UnknownFlags {
                message: "Response",
                flags: FLAG_COMPRESSED
            })
        );
        // A Hello is never compressed, and a compressed frame before the Hello is refused.
        let mut enc = FrameEncoder::new(COMPRESSION_VERSION);
        let hello = Message::Hello(crate::protocol::Hello::ours("x".repeat(2000)));
        assert_eq!(frame_v2(&mut enc, &hello), frame(&hello));
        let mut d = FrameDecoder::new();
        d.set_version(COMPRESSION_VERSION);
        d.push(&compressed_frame(MessageType::Hello, 10, &[0; 10]));
        assert!(matches!(
            d.next_message(),
            Err(ProtocolError::UnknownFlags { .. })
        ));
    }

    #[test]
    fn index_messages_compress_too() {
        use crate::protocol::testing::{distinct_blocks, file_info};
        use crate::protocol::{Index, WireFile};
        let files = (0..200u64)
            .map(|i| {
                let mut f = file_info(
                    &format!("usr/include/x86_64-linux-gnu/bits/header-{i}.h"),
                    distinct_blocks(i, 1),
                );
                f.sequence = i + 1;
                WireFile::from_file_info(&f, None)
            })
            .collect();
        let msg = Message::Index(Index {
            folder: "bench".into(),
            index_id: 1,
            files,
            last: true,
        });
        let plain = frame(&msg);
        let mut enc = FrameEncoder::new(COMPRESSION_VERSION);
        let bytes = frame_v2(&mut enc, &msg);
        assert_eq!(bytes[5], FLAG_COMPRESSED);
        assert!(bytes.len() * 10 <= plain.len() * 9);
        assert_eq!(decode_message(&bytes), Ok(msg));
    }

    #[test]
    fn hostile_compressed_bodies_close_the_connection_before_allocating() {
        let lz = lz4_flex::block::compress(&text_block(10_000));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            // A bomb: a few bytes claiming far more than a Response can hold.
            (
                compressed_frame(MessageType::Response, 1 << 30, &lz),
                "more than",
            ),
            // Within the Response limit, beyond what 20 bytes can expand to.
            (
                compressed_frame(MessageType::Response, 100_000, &lz[..20]),
                "more than",
            ),
            // An Index claiming 16 MiB from 60 bytes.
            (
                compressed_frame(MessageType::Index, (MAX_FRAME_LEN - 2).into(), &[0; 60]),
                "more than",
            ),
            // The wrong size, either way.
            (
                compressed_frame(MessageType::Response, 9_999, &lz),
                "does not decompress",
            ),
            (
                compressed_frame(MessageType::Response, 10_001, &lz),
                "expands to",
            ),
            // Garbage, and nothing at all.
            (
                compressed_frame(MessageType::Response, 1000, &[0xff; 50]),
                "does not decompress",
            ),
            (compressed_frame(MessageType::Ping, 0, &[]), ""),
        ];
        for (f, want) in cases {
            let mut d = ready_v2();
            d.push(&f);
            match d.next_message() {
                Err(ProtocolError::Malformed { detail, .. }) => {
                    assert!(detail.contains(want), "{detail}");
                }
                other => panic!("{want}: {other:?}"),
            }
            assert!(d.scratch.capacity() <= 20_000, "{}", d.scratch.capacity());
            assert!(d.next_message().is_err(), "the decoder stays failed");
        }
        // A compressed body that expands to a malformed Response is refused like any other.
        let body = [1u8, 0, 5, 1, 2];
        let f = compressed_frame(MessageType::Response, 5, &lz4_flex::block::compress(&body));
        let mut d = ready_v2();
        d.push(&f);
        assert!(matches!(
            d.next_message(),
            Err(ProtocolError::Malformed { .. })
        ));
    }

    #[test]
    fn a_large_block_is_read_into_its_own_buffer_and_checked_first() {
        let data = random_block(100_000, 9);
        let msg = response(data.clone());
        let bytes = frame(&msg);
        let mut d = ready();
        // Byte by byte through the headers, then in large pieces.
        for (i, b) in bytes[..30].iter().enumerate() {
            assert_eq!(d.next_message(), Ok(None), "after {i} bytes");
            d.push(&[*b]);
        }
        assert!(
            d.block.is_some(),
            "the block has its buffer once its header is here"
        );
        assert_eq!(d.buffered(), 30 - 6 - 5);
        for piece in bytes[30..].chunks(40_000) {
            assert_eq!(d.next_message(), Ok(None));
            d.push(piece);
        }
        assert_eq!(d.next_message(), Ok(Some(msg.clone())));
        assert_eq!((d.buffered(), d.block.is_none()), (0, true));
        // The next frame, small, right after.
        d.push(&frame(&Message::Ping));
        assert_eq!(d.next_message(), Ok(Some(Message::Ping)));
        // A block and the frames after it in one push.
        let mut more = bytes.clone();
        more.extend(frame(&Message::Ping));
        more.extend(&bytes);
        more.extend(&frame(&Message::Ping)[..3]);
        d.push(&more);
        assert_eq!(d.next_message(), Ok(Some(msg.clone())));
        assert_eq!(d.next_message(), Ok(Some(Message::Ping)));
        assert_eq!(d.next_message(), Ok(Some(msg.clone())));
        assert_eq!((d.next_message(), d.buffered()), (Ok(None), 3));

        // Headers that contradict the frame are refused before anything is allocated.
        let body_len = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let mut longer = bytes[..40].to_vec();
        longer[..4].copy_from_slice(&(body_len(&bytes) + 1).to_be_bytes());
        let mut error_code = bytes[..40].to_vec();
        error_code[7] = 1; // id 7 is one byte; the code follows
        let mut oversized = bytes[..40].to_vec();
        oversized[..4].copy_from_slice(&(200_000u32).to_be_bytes());
        oversized[8..11].copy_from_slice(&[0xc0, 0x9a, 0x0c]); // 200,000 - 11
        for (what, f) in [
            ("longer frame", longer),
            ("error code", error_code),
            ("oversized", oversized),
        ] {
            let mut d = ready();
            d.push(&f);
            assert!(
                matches!(d.next_message(), Err(ProtocolError::Malformed { .. })),
                "{what}"
            );
            assert!(d.block.is_none(), "{what}");
        }
    }

    #[test]
    fn reading_straight_into_the_decoder_keeps_one_frame_of_room() {
        let mut enc = FrameEncoder::new(COMPRESSION_VERSION);
        let msgs: Vec<Message> = (0..20u64)
            .map(|i| response(random_block(100_000 + i as usize, i + 1)))
            .collect();
        let mut bytes = Vec::new();
        for m in &msgs {
            enc.encode(m, &mut bytes).expect("encodes");
        }
        let mut d = ready_v2();
        let mut got = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let room = d.read_buf();
            // Reads of odd sizes, as a socket gives them.
            let n = room.len().min(bytes.len() - at).min(7_777 + at % 50_000);
            room[..n].copy_from_slice(&bytes[at..at + n]);
            d.filled(n);
            at += n;
            while let Some(m) = d.next_message().expect("decodes") {
                got.push(m);
            }
            assert!(
                d.buf.len() <= 4 * (MAX_BLOCK_SIZE as usize),
                "{}",
                d.buf.len()
            );
        }
        assert_eq!(got, msgs);
        assert_eq!(d.buffered(), 0);
    }

    proptest! {
        #[test]
        fn every_message_round_trips(msg in any_message()) {
            let bytes = frame(&msg);
            let mut d = decoder_for(&msg);
            d.push(&bytes);
            prop_assert_eq!(d.next_message()?, Some(msg.clone()));
            prop_assert_eq!(d.buffered(), 0);
            // Fed in two pieces at any split.
            let mut d = decoder_for(&msg);
            let cut = bytes.len() / 3;
            d.push(&bytes[..cut]);
            prop_assert_eq!(d.next_message()?, None);
            d.push(&bytes[cut..]);
            prop_assert_eq!(d.next_message()?, Some(msg));
        }

        #[test]
        fn every_message_round_trips_on_version_2(msg in any_message(),
                                                 seed in proptest::collection::vec(any::<u8>(), 1..40),
                                                 len in 0usize..=MAX_BLOCK_SIZE as usize,
                                                 noise in 0u64..4) {
            let mut enc = FrameEncoder::new(COMPRESSION_VERSION);
            // Blocks from very compressible to random.
            let data: Vec<u8> = if noise == 0 {
                seed.iter().copied().cycle().take(len).collect()
            } else {
                seed.iter().copied().cycle().take(len)
                    .zip(random_block(len, noise))
                    .map(|(a, b)| if b % 4 < noise as u8 { b } else { a })
                    .collect()
            };
            for m in [msg, response(data)] {
                let bytes = frame_v2(&mut enc, &m);
                let mut d = match m {
                    Message::Hello(_) => FrameDecoder::new(),
                    _ => ready_v2(),
                };
                let cut = bytes.len() / 3;
                d.push(&bytes[..cut]);
                prop_assert_eq!(d.next_message()?, None);
                d.push(&bytes[cut..]);
                prop_assert_eq!(d.next_message()?, Some(m));
                prop_assert_eq!(d.buffered(), 0);
            }
        }

        #[test]
        fn streams_of_frames_decode_in_any_pieces(msgs in proptest::collection::vec(any_message(), 0..4),
                                                   sizes in proptest::collection::vec(0usize..=MAX_BLOCK_SIZE as usize, 1..4),
                                                   text in any::<bool>(),
                                                   pieces in proptest::collection::vec(1usize..70_000, 1..40)) {
            let mut enc = FrameEncoder::new(COMPRESSION_VERSION);
            let mut all: Vec<Message> = Vec::new();
            for (i, n) in sizes.iter().enumerate() {
                all.push(response(if text { text_block(*n) } else { random_block(*n, i as u64 + 1) }));
                if let Some(m) = msgs.get(i) && !matches!(m, Message::Hello(_)) {
                    all.push(m.clone());
                }
            }
            let mut bytes = Vec::new();
            for m in &all {
                enc.encode(m, &mut bytes).expect("encodes");
            }
            // Half the time through `push`, half through `read_buf`, in pieces of any size.
            let mut d = ready_v2();
            let mut got = Vec::new();
            let mut at = 0;
            let mut k = 0;
            while at < bytes.len() {
                let want = pieces[k % pieces.len()].min(bytes.len() - at);
                let n = if k % 2 == 0 {
                    d.push(&bytes[at..at + want]);
                    want
                } else {
                    let room = d.read_buf();
                    let n = room.len().min(want);
                    prop_assert!(n > 0, "read_buf offered no room");
                    room[..n].copy_from_slice(&bytes[at..at + n]);
                    d.filled(n);
                    n
                };
                at += n;
                k += 1;
                while let Some(m) = d.next_message()? {
                    got.push(m);
                }
            }
            prop_assert_eq!(got, all);
            prop_assert_eq!(d.buffered(), 0);
        }

        #[test]
        fn random_compressed_bodies_never_panic(kind in 2u8..=9,
                                                raw in 0u64..200_000,
                                                lz in proptest::collection::vec(any::<u8>(), 0..300)) {
            let kind = MessageType::from_code(kind).expect("a type");
            let mut d = ready_v2();
            d.push(&compressed_frame(kind, raw, &lz));
            let _ = d.next_message();
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                    after_hello in any::<bool>()) {
            let mut d = if after_hello { ready() } else { FrameDecoder::new() };
            d.push(&bytes);
            while let Ok(Some(_)) = d.next_message() {}
        }

        #[test]
        fn random_bodies_never_panic(kind in 1u8..=9,
                                     body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut f = ((body.len() + 2) as u32).to_be_bytes().to_vec();
            f.extend_from_slice(&[kind, 0]);
            f.extend_from_slice(&body);
            let mut d = if kind == 1 { FrameDecoder::new() } else { ready() };
            d.push(&f);
            let _ = d.next_message();
        }

        #[test]
        fn damaged_frames_never_panic(msg in any_message(),
                                      damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
                                      cut in any::<prop::sample::Index>()) {
            let mut bytes = frame(&msg);
            // Keep the length prefix so the damage reaches the body decoder.
            for (at, v) in damage {
                let i = 4 + at.index(bytes.len() - 4);
                bytes[i] = v;
            }
            let mut d = decoder_for(&msg);
            d.push(&bytes[..4 + cut.index(bytes.len() - 3)]);
            while let Ok(Some(_)) = d.next_message() {}
        }

        #[test]
        fn truncated_frames_wait_for_more(msg in any_message(), cut in any::<prop::sample::Index>()) {
            let bytes = frame(&msg);
            let cut = cut.index(bytes.len());
            let mut d = decoder_for(&msg);
            d.push(&bytes[..cut]);
            prop_assert_eq!(d.next_message()?, None);
        }
    }
}
