//! Optional ed25519 signatures over a version's digest.
//!
//! What is signed is the ASCII digest string (`sha256:<hex>`), so any ed25519 tool can produce
//! or check a signature (`openssl pkeyutl -sign -rawin`). Keys are standard PEM files: PKCS#8
//! private keys and SubjectPublicKeyInfo public keys. A key's id is the first 16 hex digits of
//! the SHA-256 of its 32 public-key bytes.

use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::RegistryError;
use crate::store::VersionRecord;

pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.to_bytes())[..8])
}

/// A fresh key pair written as `PRIVATE` (mode 0600 on Unix) and `PUBLIC` PEM files.
pub fn generate_key(private: &Path, public: &Path) -> Result<String, RegistryError> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let key = SigningKey::from_bytes(&secret);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| RegistryError::Storage(format!("cannot encode the private key: {e}")))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| RegistryError::Storage(format!("cannot encode the public key: {e}")))?;
    write_private(private, pem.as_bytes())?;
    std::fs::write(public, public_pem)
        .map_err(|e| RegistryError::Storage(format!("cannot write {}: {e}", public.display())))?;
    Ok(key_id(&key.verifying_key()))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| RegistryError::Storage(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(bytes)
        .map_err(|e| RegistryError::Storage(format!("cannot write {}: {e}", path.display())))
}

pub fn read_signing_key(path: &Path) -> Result<SigningKey, RegistryError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| RegistryError::Invalid(format!("cannot read key {}: {e}", path.display())))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        RegistryError::Invalid(format!(
            "{} is not an ed25519 PKCS#8 PEM private key: {e}",
            path.display()
        ))
    })
}

pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, RegistryError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| RegistryError::Invalid(format!("cannot read key {}: {e}", path.display())))?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
        RegistryError::Invalid(format!(
            "{} is not an ed25519 PEM public key: {e}",
            path.display()
        ))
    })
}

/// Hex signature over `digest` and the signer's key id.
pub fn sign(key: &SigningKey, digest: &str) -> (String, String) {
    let sig = key.sign(digest.as_bytes());
    (hex::encode(sig.to_bytes()), key_id(&key.verifying_key()))
}

/// Which versions may be served.
#[derive(Debug, Clone, Default)]
pub struct SignaturePolicy {
    /// Refuse versions without a valid signature from a trusted key.
    pub require: bool,
    pub trusted: Vec<VerifyingKey>,
}

impl SignaturePolicy {
    /// Ok when the policy allows the version. A signature that is present is always checked
    /// against the trusted keys when there are any, required or not.
    pub fn check(&self, v: &VersionRecord) -> Result<(), RegistryError> {
        let what = format!("model '{}' version {}", v.model, v.version);
        let Some(sig_hex) = &v.signature else {
            return if self.require {
                Err(RegistryError::Integrity(format!(
                    "{what} is unsigned and the signature policy requires a signature (ballast model sign)"
                )))
            } else {
                Ok(())
            };
        };
        if self.trusted.is_empty() {
            return if self.require {
                Err(RegistryError::Integrity(format!(
                    "{what}: signatures are required but no trusted public key is configured"
                )))
            } else {
                Ok(())
            };
        }
        verify(&self.trusted, &v.digest, sig_hex, v.signer.as_deref())
            .map(|_| ())
            .map_err(|reason| RegistryError::Integrity(format!("{what}: {reason}")))
    }
}

/// Checks `sig_hex` over `digest` against any of `keys`.
pub fn verify(
    keys: &[VerifyingKey],
    digest: &str,
    sig_hex: &str,
    signer: Option<&str>,
) -> Result<String, String> {
    let bytes = hex::decode(sig_hex).map_err(|_| "the signature is not hex".to_string())?;
    let bytes: [u8; 64] = bytes
        .try_into()
        .map_err(|_| "the signature is not 64 bytes".to_string())?;
    let sig = Signature::from_bytes(&bytes);
    for key in keys {
        if key.verify_strict(digest.as_bytes(), &sig).is_ok() {
            return Ok(key_id(key));
        }
    }
    Err(format!(
        "the signature (key id {}) does not verify against any trusted key ({})",
        signer.unwrap_or("unknown"),
        keys.iter().map(key_id).collect::<Vec<_>>().join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip_and_tampering_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (private, public) = (dir.path().join("k.pem"), dir.path().join("k.pub.pem"));
        let id = generate_key(&private, &public).expect("keygen");
        let key = read_signing_key(&private).expect("private key");
        let verifying = read_verifying_key(&public).expect("public key");
        assert_eq!(key_id(&verifying), id);
        let digest = format!("sha256:{}", "ab".repeat(32));
        let (sig, signer) = sign(&key, &digest);
        assert_eq!(signer, id);
        assert_eq!(verify(&[verifying], &digest, &sig, None), Ok(id.clone()));
        let other = format!("sha256:{}", "cd".repeat(32));
        assert!(verify(&[verifying], &other, &sig, None).is_err());
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert!(verify(&[verifying], &digest, &flipped, None).is_err());
        assert!(
            generate_key(&private, &public).is_err(),
            "never overwrites a key"
        );
    }
}
