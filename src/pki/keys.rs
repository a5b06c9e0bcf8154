//! Key algorithms and key generation.
//!
//! ECDSA and Ed25519 keys come from ring (through rcgen). RSA keys come from aws-lc-rs:
//! ring cannot generate them, and aws-lc's generator is as fast as any measured
//! (docs/benchmarks.md: on par with RustCrypto rsa 0.10, 2.7x faster than rsa 0.9). aws-lc
//! is used for nothing else, so its start-up costs (CPU feature probing, and CPU-jitter
//! RNG seeding where a build leaves it on: ~30 ms) fall on RSA issuance only.

use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, SignatureAlgorithm};
use zeroize::Zeroizing;

use super::PkiError;

/// A key algorithm kpki generates and accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

pub const ALGORITHM_NAMES: &str = "ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096";

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 6] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        )
    }

    fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
            _ => &rcgen::PKCS_RSA_SHA256,
        }
    }

    /// Generates a fresh key pair.
    pub fn generate(self) -> Result<KeyPair, PkiError> {
        let err = |e: String| PkiError::KeyGeneration(self.name(), e);
        let size = match self {
            KeyAlgorithm::Rsa2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
            KeyAlgorithm::Rsa3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
            KeyAlgorithm::Rsa4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
            _ => {
                return KeyPair::generate_for(self.signature_algorithm())
                    .map_err(|e| err(e.to_string()))
            }
        };
        use aws_lc_rs::encoding::AsDer;
        let rsa = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|e| err(e.to_string()))?;
        let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> =
            rsa.as_der().map_err(|e| err(e.to_string()))?;
        let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_ref().to_vec());
        KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, self.signature_algorithm())
            .map_err(|e| err(e.to_string()))
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(bits) = s.strip_prefix("rsa-") {
            if let Ok(b) = bits.parse::<u32>() {
                if b < 2048 {
                    return Err("RSA keys below 2048 bits are refused (NIST SP 800-131A); use rsa-2048 or larger, or ecdsa-p256".to_string());
                }
            }
        }
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| format!("unknown key algorithm '{s}'; use one of {ALGORITHM_NAMES}"))
    }
}

impl<'de> serde::Deserialize<'de> for KeyAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for KeyAlgorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The PKCS#8 PEM of a key pair, wiped from memory when dropped.
pub fn private_pem(kp: &KeyPair) -> Zeroizing<String> {
    Zeroizing::new(kp.serialize_pem())
}

/// Loads a PKCS#8 PEM private key (as kpki writes them).
pub fn load_private_pem(pem: &str) -> Result<KeyPair, PkiError> {
    KeyPair::from_pem(pem).map_err(|e| PkiError::BadKey(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in KeyAlgorithm::ALL {
            assert_eq!(a.name().parse::<KeyAlgorithm>().unwrap(), a);
        }
        assert!("rsa-1024"
            .parse::<KeyAlgorithm>()
            .unwrap_err()
            .contains("2048"));
        assert!("dsa".parse::<KeyAlgorithm>().is_err());
    }

    #[test]
    fn generates_every_algorithm_except_slow_rsa() {
        for a in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::Rsa2048,
        ] {
            let kp = a.generate().unwrap();
            let back = load_private_pem(&private_pem(&kp)).unwrap();
            assert_eq!(back.public_key_raw(), kp.public_key_raw());
        }
    }
}
