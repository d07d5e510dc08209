//! The content of an input or collected file ([`FileContent`]): text, or base64 bytes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The content of an input or collected file: a string, or `{"base64": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum FileContent {
    /// UTF-8 text.
    Text(String),
    /// Arbitrary bytes.
    Binary {
        /// The bytes, base64-encoded.
        base64: String,
    },
}

impl FileContent {
    /// Text when `bytes` are UTF-8, base64 otherwise.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(s) => FileContent::Text(s),
            Err(e) => FileContent::Binary {
                base64: BASE64.encode(e.as_bytes()),
            },
        }
    }

    /// The raw bytes, or why the base64 does not decode.
    pub fn to_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        match self {
            FileContent::Text(s) => Ok(s.as_bytes().to_vec()),
            FileContent::Binary { base64 } => BASE64.decode(base64),
        }
    }
}

/// Says which of the two forms was expected, where an untagged enum would only say that
/// nothing matched; an object takes exactly the key `base64`.
impl<'de> Deserialize<'de> for FileContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Binary {
            base64: String,
        }

        struct Content;

        impl<'de> Visitor<'de> for Content {
            type Value = FileContent;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a string, or an object {"base64": "..."}"#)
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<FileContent, E> {
                Ok(FileContent::Text(s.to_owned()))
            }

            fn visit_string<E: de::Error>(self, s: String) -> Result<FileContent, E> {
                Ok(FileContent::Text(s))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FileContent, A::Error> {
                let Binary { base64 } =
                    Binary::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(FileContent::Binary { base64 })
            }
        }

        d.deserialize_any(Content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_content_round_trips_binary() {
        let bytes = vec![0xff, 0x00, 0x10];
        let c = FileContent::from_bytes(bytes.clone());
        assert!(matches!(c, FileContent::Binary { .. }));
        assert_eq!(c.to_bytes().unwrap(), bytes);
        let t = FileContent::from_bytes(b"hi".to_vec());
        assert_eq!(t, FileContent::Text("hi".into()));
    }
}
