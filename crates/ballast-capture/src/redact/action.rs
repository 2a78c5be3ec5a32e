//! Per-field actions of a redaction policy: drop the field, mask it, or replace it by a keyed
//! hash so that records can still be joined on it.

use hmac::{KeyInit, Mac};

use super::RedactError;

/// What a policy does with a whole field (input, output or request parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The field is not written at all.
    Drop,
    /// The field is written through [`mask`].
    Mask,
    /// The field is written as [`Hasher::hash`] of its bytes.
    Hash,
}

impl Action {
    /// Parses `drop`, `mask` or `hash`; `field` names the config field in the error.
    pub fn parse(name: &str, field: &str) -> Result<Action, RedactError> {
        match name {
            "drop" => Ok(Action::Drop),
            "mask" => Ok(Action::Mask),
            "hash" => Ok(Action::Hash),
            _ => Err(RedactError::UnknownAction {
                field: field.to_owned(),
                name: name.to_owned(),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Drop => "drop",
            Action::Mask => "mask",
            Action::Hash => "hash",
        }
    }

    /// The value to write for `value`, or `None` when the field is dropped.
    pub fn apply(self, value: &str, hasher: &Hasher) -> Option<String> {
        match self {
            Action::Drop => None,
            Action::Mask => Some(mask(value)),
            Action::Hash => Some(hasher.hash(value.as_bytes())),
        }
    }
}

/// Keyed hashing for the `hash` action: HMAC-SHA256 under a secret key, the first 16 bytes of
/// the tag as 32 lower-case hex characters.
///
/// The same key and value always give the same string, so hashed fields still join across
/// records and models that share the key; without the key a value cannot be confirmed by
/// hashing guesses (a plain SHA-256 of a phone number or SSN falls to enumeration in minutes).
/// 128 bits keep accidental collisions out of reach for any log (birthday bound ~2^64 values)
/// at half the width. Rotating the key breaks joins across the rotation, by design.
#[derive(Clone)]
pub struct Hasher {
    mac: hmac::Hmac<sha2::Sha256>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher { key: <redacted> }")
    }
}

/// Bytes of the HMAC tag kept (32 hex characters).
pub const HASH_BYTES: usize = 16;

impl Hasher {
    /// A hasher keyed with `key` (any length; 32 random bytes recommended).
    pub fn new(key: &[u8]) -> Hasher {
        let mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        Hasher { mac }
    }

    /// `hex(HMAC-SHA256(key, value)[..16])`.
    pub fn hash(&self, value: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(value);
        let tag = mac.finalize().into_bytes();
        hex::encode(&tag[..HASH_BYTES])
    }
}

/// Masks a value: values of more than 8 characters keep their last 4 characters and every
/// other character becomes `*`; values of 8 characters or fewer become all `*`. Characters are
/// Unicode scalar values, so the masked value has the same character count as the original
/// (`4111111111111111` → `************1111`, `secret` → `******`).
pub fn mask(value: &str) -> String {
    let n = value.chars().count();
    let keep = if n > 8 { 4 } else { 0 };
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i + keep >= n { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_parse_accepts_the_three_names_and_names_the_field_otherwise() {
        for a in [Action::Drop, Action::Mask, Action::Hash] {
            assert_eq!(Action::parse(a.as_str(), "f"), Ok(a));
        }
        let err = Action::parse("encrypt", "log.redact.inputs.email")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("log.redact.inputs.email") && err.contains("drop, mask, hash"),
            "{err}"
        );
    }

    #[test]
    fn hash_is_hmac_sha256_truncated_to_32_hex_chars() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let h = Hasher::new(b"Jefe").hash(b"what do ya want for nothing?");
        assert_eq!(h, "5bdcc146bf60754e6a042426089575c7");
    }

    #[test]
    fn same_key_and_value_give_the_same_hash_and_another_key_does_not() {
        let a = Hasher::new(b"k1");
        assert_eq!(
            a.hash(b"jane@example.com"),
            Hasher::new(b"k1").hash(b"jane@example.com")
        );
        assert_ne!(
            a.hash(b"jane@example.com"),
            Hasher::new(b"k2").hash(b"jane@example.com")
        );
        assert_ne!(a.hash(b"jane@example.com"), a.hash(b"john@example.com"));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        assert_eq!(
            format!("{:?}", Hasher::new(b"secret")),
            "Hasher { key: <redacted> }"
        );
    }

    #[test]
    fn mask_keeps_the_last_four_of_long_values_only() {
        assert_eq!(mask("4111111111111111"), "************1111");
        assert_eq!(mask("123456789"), "*****6789");
        assert_eq!(mask("12345678"), "********");
        assert_eq!(mask("secret"), "******");
        assert_eq!(mask(""), "");
        assert_eq!(mask("Müller-Lüdenscheidt"), "***************eidt");
    }

    #[test]
    fn apply_drops_masks_or_hashes() {
        let h = Hasher::new(b"k");
        assert_eq!(Action::Drop.apply("x", &h), None);
        assert_eq!(Action::Mask.apply("abc", &h).as_deref(), Some("***"));
        assert_eq!(Action::Hash.apply("abc", &h), Some(h.hash(b"abc")));
    }
}
