//! Binary fields in JSON frames, carried as standard padded base64, and
//! the lowercase hex that message ids are shown in.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Lowercase hex of `bytes`, as message ids are shown.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes that serialise as a base64 string.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Base64Bytes(pub Vec<u8>);

impl std::fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print contents: these fields hold tokens and ciphertext.
        write!(f, "Base64Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Base64Bytes)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_base64() {
        let json = serde_json::to_string(&Base64Bytes(vec![0xff, 0, 1])).unwrap();
        assert_eq!(json, r#""/wAB""#);
        let back: Base64Bytes = serde_json::from_str(&json).unwrap();
        assert_eq!(back.0, vec![0xff, 0, 1]);
        assert!(serde_json::from_str::<Base64Bytes>(r#""@@""#).is_err());
    }

    #[test]
    fn debug_hides_contents() {
        assert_eq!(
            format!("{:?}", Base64Bytes(vec![1, 2])),
            "Base64Bytes(2 bytes)"
        );
    }
}
