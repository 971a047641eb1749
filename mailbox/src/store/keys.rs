//! The sled key layout (documented in [`super`]): how keys and values are built and read.

use crypto::{Fingerprint, MessageId};

pub(super) fn queue_key(recipient: &Fingerprint, seq: u64) -> Vec<u8> {
    [b"q".as_slice(), recipient.as_ref(), &seq.to_be_bytes()].concat()
}

pub(super) fn id_key(id: &MessageId) -> Vec<u8> {
    [b"i".as_slice(), id.as_ref()].concat()
}

pub(super) fn time_key(stored_ms: u64, id: &MessageId) -> Vec<u8> {
    [b"t".as_slice(), &stored_ms.to_be_bytes(), id.as_ref()].concat()
}

pub(super) fn usage_key(recipient: &Fingerprint) -> Vec<u8> {
    [b"u".as_slice(), recipient.as_ref()].concat()
}

/// What an `i` entry says of a stored envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct IdMeta {
    pub(super) recipient: Fingerprint,
    pub(super) seq: u64,
    pub(super) stored_ms: u64,
    pub(super) len: u64,
}

impl IdMeta {
    pub(super) fn to_bytes(self) -> Vec<u8> {
        [
            self.recipient.as_ref(),
            &self.seq.to_be_bytes(),
            &self.stored_ms.to_be_bytes(),
            &self.len.to_be_bytes(),
        ]
        .concat()
    }

    pub(super) fn parse(meta: &[u8]) -> Option<Self> {
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(meta.get(at..at + 8)?.try_into().ok()?))
        };
        Some(Self {
            recipient: meta.get(..32)?.try_into().ok()?,
            seq: u64_at(32)?,
            stored_ms: u64_at(40)?,
            len: u64_at(48)?,
        })
    }
}

pub(super) fn usage_bytes((count, bytes): (u64, u64)) -> Vec<u8> {
    [count.to_be_bytes(), bytes.to_be_bytes()].concat()
}

pub(super) fn parse_usage(value: &[u8]) -> Option<(u64, u64)> {
    Some((
        u64::from_be_bytes(value.get(..8)?.try_into().ok()?),
        u64::from_be_bytes(value.get(8..16)?.try_into().ok()?),
    ))
}

/// Tree name of the bucket of envelopes stored in `[start, end)` ms.
pub(super) fn bucket_name(start: u64, end: u64) -> Vec<u8> {
    [b"b".as_slice(), &start.to_be_bytes(), &end.to_be_bytes()].concat()
}

pub(super) fn parse_bucket_name(name: &[u8]) -> Option<(u64, u64)> {
    if name.len() != 17 || name[0] != b'b' {
        return None;
    }
    Some((
        u64::from_be_bytes(name[1..9].try_into().ok()?),
        u64::from_be_bytes(name[9..17].try_into().ok()?),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    pub(super) fn key_layout_is_pinned() {
        let key = queue_key(&Fingerprint([0xaa; 32]), 0x0102);
        assert_eq!(key.len(), 41);
        assert_eq!(key[0], b'q');
        assert_eq!(&key[1..33], &[0xaa; 32]);
        assert_eq!(&key[33..], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(
            id_key(&MessageId([0xbb; 16])),
            [b"i".as_slice(), &[0xbb; 16]].concat()
        );
        let t = time_key(0x0a0b, &MessageId([0xcc; 16]));
        assert_eq!(t.len(), 25);
        assert_eq!(&t[..9], &[b't', 0, 0, 0, 0, 0, 0, 0x0a, 0x0b]);
        assert_eq!(&t[9..], &[0xcc; 16]);
        let meta = IdMeta {
            recipient: Fingerprint([1; 32]),
            seq: 5,
            stored_ms: 7,
            len: 9,
        };
        let bytes = meta.to_bytes();
        assert_eq!(bytes.len(), 56);
        assert_eq!(IdMeta::parse(&bytes), Some(meta));
        assert_eq!(IdMeta::parse(&bytes[..55]), None);
        assert_eq!(
            usage_key(&Fingerprint([2; 32])),
            [b"u".as_slice(), &[2; 32]].concat()
        );
        assert_eq!(parse_usage(&usage_bytes((3, 4))), Some((3, 4)));
        let name = bucket_name(0x10, 0x20);
        assert_eq!(name.len(), 17);
        assert_eq!(parse_bucket_name(&name), Some((0x10, 0x20)));
        assert_eq!(parse_bucket_name(b"__sled__default"), None);
    }
}
