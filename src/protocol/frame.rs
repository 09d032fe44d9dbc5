//! Frames: a length prefix, a type byte, a flags byte, a body. Sans IO: bytes in, messages
//! out (see "Frames" in the module docs).
//!
//! A frame's declared length is checked against the limit as soon as its 4 bytes are
//! here, before anything is allocated for it: the decoder only ever holds bytes the peer
//! has actually sent, at most one incomplete frame plus the last push.

use super::{MAX_FRAME_LEN, MAX_HELLO_FRAME_LEN, Message, MessageType, ProtocolError};

/// Bytes before the body: the length (4), the type (1), the flags (1).
pub const FRAME_HEADER_LEN: usize = 6;

/// Flag bit 0: the body is compressed. Reserved: no version so far defines a compression,
/// so a peer never sets it and a receiver refuses it like any other unknown bit.
pub const FLAG_COMPRESSED: u8 = 0x01;

/// Flag bits this version understands (none yet).
const KNOWN_FLAGS: u8 = 0;

/// Appends `msg` as one frame to `out`. Refuses (leaving `out` as it was) a message that
/// breaks a limit of the spec, so Shoal never sends what its peer must refuse.
pub fn encode(msg: &Message, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, msg.kind().code(), 0]);
    if let Err(e) = msg.encode_body(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - 4;
    let max = if msg.kind() == MessageType::Hello {
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
                message: msg.kind().name(),
                detail: format!("the frame would be {len} bytes, more than the limit of {max}"),
            })
        }
    }
}

/// Turns the bytes of one connection into messages, as they arrive.
///
/// Enforces the connection's framing rules: the first frame must be a `Hello` of at most
/// [`MAX_HELLO_FRAME_LEN`] bytes, no later frame may be a `Hello`, and no frame may exceed
/// [`MAX_FRAME_LEN`]. After an error the decoder returns that error forever: the
/// connection must be closed.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already decoded; dropped when they are half the buffer.
    start: usize,
    hello_seen: bool,
    failed: Option<ProtocolError>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes received from the peer. Call [`Self::next_message`] until it returns `Ok(None)`
    /// before pushing more, so at most one incomplete frame is ever held.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.next_inner() {
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.start = 0;
                Err(e)
            }
            ok => ok,
        }
    }

    fn next_inner(&mut self) -> Result<Option<Message>, ProtocolError> {
        let avail = &self.buf[self.start..];
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
        if flags & !KNOWN_FLAGS != 0 {
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
            return Ok(None);
        }
        let msg = Message::decode_body(kind, &avail[FRAME_HEADER_LEN..end])?;
        self.hello_seen = true;
        self.start += end;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(msg))
    }
}

/// Decodes one whole frame of any type, outside the connection's ordering rules.
#[cfg(test)]
pub(crate) fn decode_message(frame: &[u8]) -> Result<Message, ProtocolError> {
    let mut d = FrameDecoder {
        hello_seen: frame.get(4) != Some(&MessageType::Hello.code()),
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
