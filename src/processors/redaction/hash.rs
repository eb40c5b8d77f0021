//! Replacements for what redaction finds: `****`, or a hex digest (contrib's `hash_function`).

use md5::Digest as _;
use ring::{digest, hmac};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
pub enum HashFunction {
    #[default]
    #[serde(rename = "none")]
    None,
    #[serde(rename = "md5")]
    Md5,
    #[serde(rename = "sha1")]
    Sha1,
    #[serde(rename = "sha3")]
    Sha3,
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

impl HashFunction {
    pub fn needs_key(self) -> bool {
        matches!(self, HashFunction::HmacSha256 | HashFunction::HmacSha512)
    }
}

#[derive(Clone)]
pub enum Hasher {
    Mask,
    Md5,
    Sha1,
    Sha3,
    Hmac(hmac::Key),
}

impl Hasher {
    pub fn mask() -> Self {
        Hasher::Mask
    }

    pub fn new(f: HashFunction, key: &str) -> Self {
        match f {
            HashFunction::None => Hasher::Mask,
            HashFunction::Md5 => Hasher::Md5,
            HashFunction::Sha1 => Hasher::Sha1,
            HashFunction::Sha3 => Hasher::Sha3,
            HashFunction::HmacSha256 => {
                Hasher::Hmac(hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()))
            }
            HashFunction::HmacSha512 => {
                Hasher::Hmac(hmac::Key::new(hmac::HMAC_SHA512, key.as_bytes()))
            }
        }
    }

    /// The replacement for `matched`.
    pub fn apply(&self, matched: &str) -> String {
        let bytes = matched.as_bytes();
        let hex = |d: &[u8]| crate::data::json::to_hex(d);
        match self {
            Hasher::Mask => "****".to_string(),
            Hasher::Md5 => hex(&md5::Md5::digest(bytes)),
            Hasher::Sha1 => hex(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, bytes).as_ref()),
            Hasher::Sha3 => hex(&sha3::Sha3_256::digest(bytes)),
            Hasher::Hmac(key) => hex(hmac::sign(key, bytes).as_ref()),
        }
    }
}
