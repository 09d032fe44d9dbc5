//! The primitive value encodings of the wire format (see "Values" in the module docs):
//! LEB128 varints, zigzag, fixed-width fields, strings and counted lists.
//!
//! The [`Reader`] never trusts its input: every read is bounds-checked, every count is
//! checked against what the rest of the body could hold before anything is allocated, and
//! every failure is a [`ProtocolError::Malformed`] naming the message and the field.
//! The [`Writer`] checks the same limits, so Shoal never sends what a peer must refuse.

use super::ProtocolError;

/// Appends values to a frame body. Checks limits; on error the caller truncates the frame.
pub(crate) struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// The message being written, for error messages.
    message: &'static str,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>, message: &'static str) -> Self {
        Self { out, message }
    }

    pub(crate) fn error(&self, detail: String) -> ProtocolError {
        ProtocolError::Unsendable {
            message: self.message,
            detail,
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }

    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    pub(crate) fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    pub(crate) fn u64_be(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn fixed32(&mut self, v: &[u8; 32]) {
        self.out.extend_from_slice(v);
    }

    pub(crate) fn bytes(
        &mut self,
        field: &'static str,
        v: &[u8],
        max: usize,
    ) -> Result<(), ProtocolError> {
        if v.len() > max {
            return Err(self.error(format!(
                "{field} is {} bytes, more than the limit of {max}",
                v.len()
            )));
        }
        self.varint(v.len() as u64);
        self.out.extend_from_slice(v);
        Ok(())
    }

    /// The length prefix of a byte string of `len` bytes whose bytes the caller sends
    /// separately.
    pub(crate) fn bytes_len(
        &mut self,
        field: &'static str,
        len: usize,
        max: usize,
    ) -> Result<(), ProtocolError> {
        if len > max {
            return Err(self.error(format!(
                "{field} is {len} bytes, more than the limit of {max}"
            )));
        }
        self.varint(len as u64);
        Ok(())
    }

    pub(crate) fn str(
        &mut self,
        field: &'static str,
        v: &str,
        max: usize,
    ) -> Result<(), ProtocolError> {
        self.bytes(field, v.as_bytes(), max)
    }

    /// Writes the element count of a list after checking it against its limit.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        n: usize,
        max: usize,
    ) -> Result<(), ProtocolError> {
        if n > max {
            return Err(self.error(format!(
                "{field} has {n} elements, more than the limit of {max}"
            )));
        }
        self.varint(n as u64);
        Ok(())
    }
}

/// Reads values from the front of a frame body.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    /// The message being read, for error messages.
    message: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], message: &'static str) -> Self {
        Self { buf, message }
    }

    pub(crate) fn error(&self, detail: String) -> ProtocolError {
        ProtocolError::Malformed {
            message: self.message,
            detail,
        }
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], ProtocolError> {
        if n > self.buf.len() {
            return Err(self.error(format!(
                "the body ends inside {field} (needs {n} bytes, {} left)",
                self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.take(field, 1)?[0])
    }

    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, ProtocolError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.error(format!("{field} is {b}, a boolean must be 0 or 1"))),
        }
    }

    /// An unsigned LEB128 varint of at most 10 bytes in its shortest form.
    pub(crate) fn varint(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(field)?;
            if i == 9 && b > 1 {
                return Err(self.error(format!("{field} is a varint larger than 64 bits")));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(self.error(format!(
                        "{field} is a varint with a redundant zero byte (not the shortest form)"
                    )));
                }
                return Ok(v);
            }
        }
        // The tenth byte either ends the varint or fails the `b > 1` check above.
        Err(self.error(format!("{field} is a varint longer than 10 bytes")))
    }

    pub(crate) fn varint_u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        let v = self.varint(field)?;
        u32::try_from(v).map_err(|_| self.error(format!("{field} is {v}, more than 2^32 - 1")))
    }

    pub(crate) fn zigzag(&mut self, field: &'static str) -> Result<i64, ProtocolError> {
        let u = self.varint(field)?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    pub(crate) fn u64_be(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        let b = self.take(field, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub(crate) fn fixed32(&mut self, field: &'static str) -> Result<[u8; 32], ProtocolError> {
        let b = self.take(field, 32)?;
        let mut a = [0u8; 32];
        a.copy_from_slice(b);
        Ok(a)
    }

    /// A length-prefixed byte string; the length is checked against `max` and against the
    /// bytes left before the bytes are copied.
    pub(crate) fn bytes(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], ProtocolError> {
        let len = self.varint(field)?;
        if len > max as u64 {
            return Err(self.error(format!(
                "{field} is {len} bytes, more than the limit of {max}"
            )));
        }
        self.take(field, len as usize)
    }

    pub(crate) fn str(&mut self, field: &'static str, max: usize) -> Result<String, ProtocolError> {
        let b = self.bytes(field, max)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(self.error(format!("{field} is not valid UTF-8 ({e})"))),
        }
    }

    /// The element count of a list: at most `max`, and small enough that `count` elements
    /// of at least `min_len` bytes each fit in what is left of the body. Only then may the
    /// caller allocate room for `count` elements.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        max: usize,
        min_len: usize,
    ) -> Result<usize, ProtocolError> {
        let n = self.varint(field)?;
        if n > max as u64 {
            return Err(self.error(format!(
                "{field} has {n} elements, more than the limit of {max}"
            )));
        }
        let need = n.saturating_mul(min_len as u64);
        if need > self.buf.len() as u64 {
            return Err(self.error(format!(
                "{field} claims {n} elements, which need at least {need} bytes, but only {} are left",
                self.buf.len()
            )));
        }
        Ok(n as usize)
    }

    /// Everything left of the body.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Checks that the whole body was read.
    pub(crate) fn finish(&self) -> Result<(), ProtocolError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.error(format!(
                "{} bytes follow the end of the body",
                self.buf.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(v in any::<u64>(), z in any::<i64>()) {
            let mut out = Vec::new();
            let mut w = Writer::new(&mut out, "test");
            w.varint(v);
            w.zigzag(z);
            let mut r = Reader::new(&out, "test");
            prop_assert_eq!(r.varint("v")?, v);
            prop_assert_eq!(r.zigzag("z")?, z);
            prop_assert!(r.finish().is_ok());
        }
    }

    #[test]
    fn varints_refuse_overlong_and_oversized_forms() {
        // 0 written in two bytes.
        assert!(Reader::new(&[0x80, 0x00], "t").varint("v").is_err());
        // 2^64 (the tenth byte carries a second bit).
        let big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&big, "t").varint("v").is_err());
        // u64::MAX is fine.
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max, "t").varint("v"), Ok(u64::MAX));
        // Truncated.
        assert!(Reader::new(&[0x80], "t").varint("v").is_err());
    }

    #[test]
    fn counts_are_checked_against_the_remaining_bytes() {
        // 2^40 elements claimed with 3 bytes left: an error, not an allocation.
        let mut body = Vec::new();
        Writer::new(&mut body, "t").varint(1 << 40);
        body.extend_from_slice(&[0, 0, 0]);
        let err = Reader::new(&body, "t").count("list", usize::MAX, 1);
        assert!(
            matches!(err, Err(ProtocolError::Malformed { .. })),
            "{err:?}"
        );
        let mut body = Vec::new();
        Writer::new(&mut body, "t").varint(4);
        body.extend_from_slice(&[0; 8]);
        assert_eq!(Reader::new(&body, "t").count("list", 10, 2), Ok(4));
        assert!(Reader::new(&body, "t").count("list", 10, 3).is_err());
        assert!(Reader::new(&body, "t").count("list", 3, 1).is_err());
    }
}
