//! Serde for the fixed-size digests and ids ([`crate::Fingerprint`], [`crate::MessageId`],
//! [`crate::MessageHash`]): lowercase hex in human-readable formats (JSON, YAML), the raw
//! bytes in binary ones (postcard), where the encoding is the same as a derived newtype's,
//! so envelopes and frames did not change when these types replaced raw arrays.

/// Implements `AsRef<[u8]>`, `TryFrom<&[u8]>`, `Serialize` and `Deserialize` for a `pub struct $ty(pub [u8; $n])`.
macro_rules! hex_bytes_serde {
    ($ty:ident, $n:literal) => {
        impl AsRef<[u8]> for $ty {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        /// From exactly the right number of bytes.
        impl TryFrom<&[u8]> for $ty {
            type Error = std::array::TryFromSliceError;
            fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
                <[u8; $n]>::try_from(bytes).map(Self)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&hex::encode(self.0))
                } else {
                    serializer.serialize_newtype_struct(stringify!($ty), &self.0)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                    let mut out = [0u8; $n];
                    hex::decode_to_slice(text.as_bytes(), &mut out).map_err(|_| {
                        serde::de::Error::custom(concat!(
                            stringify!($ty),
                            ": expected ",
                            stringify!($n),
                            " bytes as lowercase hex"
                        ))
                    })?;
                    Ok(Self(out))
                } else {
                    <[u8; $n]>::deserialize(deserializer).map(Self)
                }
            }
        }
    };
}

pub(crate) use hex_bytes_serde;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::{Fingerprint, MessageHash, MessageId};

    #[test]
    fn binary_formats_keep_the_raw_bytes_and_text_formats_get_hex() {
        let id = MessageId([0xab; 16]);
        assert_eq!(
            postcard::to_stdvec(&id).unwrap(),
            postcard::to_stdvec(&[0xabu8; 16]).unwrap()
        );
        assert_eq!(
            postcard::from_bytes::<MessageId>(&[7; 16]).unwrap(),
            MessageId([7; 16])
        );
        let fp = Fingerprint([1; 32]);
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(json, format!("\"{}\"", "01".repeat(32)));
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
        let hash = MessageHash([0xfe; 32]);
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(serde_json::from_str::<MessageHash>(&json).unwrap(), hash);
        let short = serde_json::from_str::<MessageId>("\"abcd\"").unwrap_err();
        assert!(
            short.to_string().contains("MessageId: expected 16 bytes"),
            "{short}"
        );
    }
}
