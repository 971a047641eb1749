//! The sled key layout (documented in [`super`]): how keys and values are built and read.

use crypto::{Fingerprint, MessageId};

use super::Origin;

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

pub(super) fn origin_key(origin: &Origin) -> Vec<u8> {
    [b"o".as_slice(), &origin.0].concat()
}

/// A queue sequence: the stored-at time, then the envelope's place within its millisecond.
pub(super) fn sequence(stored_ms: u64, n: u16) -> u64 {
    (stored_ms << 16) | u64::from(n)
}

/// What a `t` value (and an `i` entry, where there is one) says of a stored envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct IdMeta {
    pub(super) recipient: Fingerprint,
    pub(super) seq: u64,
    pub(super) stored_ms: u64,
    pub(super) len: u64,
    pub(super) origin: Origin,
}

impl IdMeta {
    /// The length of [`IdMeta::to_bytes`].
    pub(super) const LEN: usize = 72;

    pub(super) fn to_bytes(self) -> Vec<u8> {
        [
            self.recipient.as_ref(),
            &self.seq.to_be_bytes(),
            &self.stored_ms.to_be_bytes(),
            &self.len.to_be_bytes(),
            &self.origin.0,
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
            origin: Origin(meta.get(56..72)?.try_into().ok()?),
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

/// Directory name of the partition of envelopes stored in `[start, end)` ms.
pub(super) fn partition_name(start: u64, end: u64) -> String {
    format!("{start:016x}-{end:016x}")
}

pub(super) fn parse_partition_name(name: &str) -> Option<(u64, u64)> {
    let (start, end) = name.split_once('-')?;
    if start.len() != 16 || end.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
    ))
}

/// Tree name of a bucket of the previous layout (envelopes stored in `[start, end)` ms).
#[cfg(test)]
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
            origin: Origin([3; 16]),
        };
        let bytes = meta.to_bytes();
        assert_eq!(bytes.len(), IdMeta::LEN);
        assert_eq!(&bytes[56..], &[3; 16]);
        assert_eq!(IdMeta::parse(&bytes), Some(meta));
        assert_eq!(IdMeta::parse(&bytes[..71]), None);
        assert_eq!(
            origin_key(&Origin([4; 16])),
            [b"o".as_slice(), &[4; 16]].concat()
        );
        assert_eq!(sequence(0x0a0b, 3), 0x0a0b_0003);
        assert_eq!(
            partition_name(0x10, 0x20),
            "0000000000000010-0000000000000020"
        );
        assert_eq!(
            parse_partition_name(&partition_name(0x10, u64::MAX)),
            Some((0x10, u64::MAX))
        );
        assert_eq!(parse_partition_name("10-20"), None);
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
