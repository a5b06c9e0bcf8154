//! Key algorithms and key generation.
//!
//! ECDSA and Ed25519 keys come from ring (through rcgen). RSA keys come from aws-lc-rs:
//! ring cannot generate them, and aws-lc's generator is as fast as any measured
//! (docs/benchmarks.md: on par with RustCrypto rsa 0.10, 2.7x faster than rsa 0.9). aws-lc
//! is used for nothing else, so its start-up costs (CPU feature probing, and CPU-jitter
//! RNG seeding where a build leaves it on: ~30 ms) fall on RSA issuance only.

use std::fmt;
use std::str::FromStr;

use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
    ECDSA_P384_SHA384_ASN1_SIGNING,
};
use zeroize::Zeroizing;

use super::pem::KeyFormat;
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

    /// Generates a fresh key pair.
    pub fn generate(self) -> Result<PrivateKey, PkiError> {
        let err = |e: String| PkiError::KeyGeneration(self.name(), e);
        let rng = SystemRandom::new();
        let size = match self {
            KeyAlgorithm::Rsa2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
            KeyAlgorithm::Rsa3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
            KeyAlgorithm::Rsa4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
            KeyAlgorithm::Ed25519 => {
                // ring returns the PKCS#8 document by value; it is copied into wiped
                // memory at once (ring's own copy is a stack value kpki cannot reach).
                let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| err(e.to_string()))?;
                return PrivateKey::from_pkcs8(Zeroizing::new(doc.as_ref().to_vec()))
                    .map_err(|e| err(e.to_string()));
            }
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
                let alg = match self {
                    KeyAlgorithm::EcdsaP256 => &ECDSA_P256_SHA256_ASN1_SIGNING,
                    _ => &ECDSA_P384_SHA384_ASN1_SIGNING,
                };
                let doc =
                    EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| err(e.to_string()))?;
                return PrivateKey::from_pkcs8(Zeroizing::new(doc.as_ref().to_vec()))
                    .map_err(|e| err(e.to_string()));
            }
        };
        use aws_lc_rs::encoding::AsDer;
        let rsa = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|e| err(e.to_string()))?;
        // aws-lc-rs wipes its DER buffer when it is dropped.
        let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> =
            rsa.as_der().map_err(|e| err(e.to_string()))?;
        PrivateKey::from_pkcs8(Zeroizing::new(der.as_ref().to_vec()))
            .map_err(|e| err(e.to_string()))
    }
}

/// A private key for signing, held as its PKCS#8 DER in memory that is wiped when the key
/// is dropped, with ring's signing key made from it.
///
/// rcgen's `KeyPair` is not used: it keeps a copy of the PKCS#8 DER that it frees
/// without wiping, and its `serialize_der`/`serialize_pem` hand out more such copies. This
/// type signs for rcgen instead ([`rcgen::SigningKey`]), and [`private_pem`] encodes the
/// one wiped copy straight into wiped memory.
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    kind: Kind,
    alg: &'static SignatureAlgorithm,
}

enum Kind {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("alg", self.alg)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// A key from its PKCS#8 DER (Ed25519, ECDSA P-256 or P-384, RSA), which it keeps.
    pub fn from_pkcs8(pkcs8: Zeroizing<Vec<u8>>) -> Result<PrivateKey, PkiError> {
        let rng = SystemRandom::new();
        let (kind, alg) = if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8) {
            (Kind::Ed(k), &rcgen::PKCS_ED25519)
        } else if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng)
        {
            (Kind::Ec(k), &rcgen::PKCS_ECDSA_P256_SHA256)
        } else if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &pkcs8, &rng)
        {
            (Kind::Ec(k), &rcgen::PKCS_ECDSA_P384_SHA384)
        } else if let Ok(k) = RsaKeyPair::from_pkcs8(&pkcs8) {
            (Kind::Rsa(k), &rcgen::PKCS_RSA_SHA256)
        } else {
            return Err(PkiError::BadKey(
                "not a PKCS#8 Ed25519, ECDSA P-256/P-384 or RSA private key".into(),
            ));
        };
        Ok(PrivateKey { pkcs8, kind, alg })
    }

    /// The key's PKCS#8 DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }
}

impl PublicKeyData for PrivateKey {
    fn der_bytes(&self) -> &[u8] {
        match &self.kind {
            Kind::Ec(k) => k.public_key().as_ref(),
            Kind::Ed(k) => k.public_key().as_ref(),
            Kind::Rsa(k) => k.public_key().as_ref(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

impl SigningKey for PrivateKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let rng = SystemRandom::new();
        Ok(match &self.kind {
            Kind::Ec(k) => k
                .sign(&rng, msg)
                .map_err(|_| rcgen::Error::RingUnspecified)?
                .as_ref()
                .to_vec(),
            Kind::Ed(k) => k.sign(msg).as_ref().to_vec(),
            Kind::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&ring::signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| rcgen::Error::RingUnspecified)?;
                sig
            }
        })
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

/// The PKCS#8 PEM of a key pair, wiped from memory when dropped. Encoded straight into a
/// buffer of its final size: no intermediate or reallocated copy of the key is left.
pub fn private_pem(key: &PrivateKey) -> Zeroizing<String> {
    use base64::Engine;
    const BEGIN: &[u8] = b"-----BEGIN PRIVATE KEY-----\n";
    const END: &[u8] = b"-----END PRIVATE KEY-----\n";
    let der = key.pkcs8_der();
    let b64 = der.len().div_ceil(3) * 4;
    let mut out = Zeroizing::new(vec![0u8; BEGIN.len() + b64 + b64.div_ceil(64) + END.len()]);
    out[..BEGIN.len()].copy_from_slice(BEGIN);
    let mut at = BEGIN.len();
    for chunk in der.chunks(48) {
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(chunk, &mut out[at..])
            .expect("sized for it");
        out[at + n] = b'\n';
        at += n + 1;
    }
    out[at..].copy_from_slice(END);
    let bytes = std::mem::take(&mut *out);
    Zeroizing::new(String::from_utf8(bytes).expect("PEM is ASCII"))
}

/// Loads a PKCS#8 PEM private key (as kpki writes them): the `PRIVATE KEY` block's
/// base64 and the DER it decodes to are held in wiped memory only.
pub fn load_private_pem(pem: &str) -> Result<PrivateKey, PkiError> {
    use base64::Engine;
    let bad = |m: &str| PkiError::BadKey(m.to_owned());
    let start = pem
        .find("-----BEGIN PRIVATE KEY-----")
        .ok_or_else(|| bad("no PKCS#8 PRIVATE KEY block"))?
        + "-----BEGIN PRIVATE KEY-----".len();
    let len = pem[start..]
        .find("-----END PRIVATE KEY-----")
        .ok_or_else(|| bad("the PRIVATE KEY block has no end"))?;
    let body = &pem[start..start + len];
    let mut b64 = Zeroizing::new(Vec::with_capacity(body.len()));
    b64.extend(body.bytes().filter(|b| !b.is_ascii_whitespace()));
    let mut der = Zeroizing::new(vec![0u8; b64.len() / 4 * 3 + 3]);
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(&b64[..], &mut der[..])
        .map_err(|e| PkiError::BadKey(format!("the PRIVATE KEY block is not base64: {e}")))?;
    der.truncate(n);
    PrivateKey::from_pkcs8(der)
}

/// The raw public key of a private key (what a certificate's subjectPublicKey bits
/// hold for the same key), or `None` when it cannot be read (unknown type, broken DER).
///
/// SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`) keys carry their public half,
/// so it is read from the structure; PKCS#8 keys go through ring ([`crate::pki::PrivateKey`]), which
/// derives it, with the same structural reading as a fallback.
pub(crate) fn public_of_private(format: KeyFormat, der: &[u8]) -> Option<Vec<u8>> {
    match format {
        KeyFormat::Pkcs1 => der::rsa_public(der),
        KeyFormat::Sec1 => der::sec1_public(der),
        KeyFormat::Pkcs8 => {
            use rcgen::PublicKeyData;
            match crate::pki::PrivateKey::from_pkcs8(zeroize::Zeroizing::new(der.to_vec())) {
                Ok(k) => Some(k.der_bytes().to_vec()),
                Err(_) => der::pkcs8_public(der),
            }
        }
    }
}

/// Just enough DER to find the public half of a private key.
mod der {
    /// Splits one TLV off the front: (tag, value, rest).
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *b.first()?;
        let first = *b.get(1)? as usize;
        let (len, head) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *b.get(2 + i)? as usize;
            }
            (len, 2 + n)
        };
        let end = head.checked_add(len)?;
        Some((tag, b.get(head..end)?, b.get(end..)?))
    }

    fn encode_len(len: usize, out: &mut Vec<u8>) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }

    /// PKCS#1 RSAPrivateKey → the DER RSAPublicKey `SEQUENCE { n, e }`.
    pub(super) fn rsa_public(der: &[u8]) -> Option<Vec<u8>> {
        let (0x30, body, _) = tlv(der)? else {
            return None;
        };
        let (0x02, _version, rest) = tlv(body)? else {
            return None;
        };
        let (0x02, _, after_n) = tlv(rest)? else {
            return None;
        };
        let n_tlv = &rest[..rest.len() - after_n.len()];
        let (0x02, _, after_e) = tlv(after_n)? else {
            return None;
        };
        let e_tlv = &after_n[..after_n.len() - after_e.len()];
        let mut out = vec![0x30];
        encode_len(n_tlv.len() + e_tlv.len(), &mut out);
        out.extend_from_slice(n_tlv);
        out.extend_from_slice(e_tlv);
        Some(out)
    }

    /// SEC1 ECPrivateKey → the public point of its `[1] publicKey` field.
    pub(super) fn sec1_public(der: &[u8]) -> Option<Vec<u8>> {
        let (0x30, mut rest, _) = tlv(der)? else {
            return None;
        };
        while !rest.is_empty() {
            let (tag, value, next) = tlv(rest)?;
            if tag == 0xa1 {
                let (0x03, bits, _) = tlv(value)? else {
                    return None;
                };
                // A BIT STRING's first octet counts the unused bits (0 for a point).
                return bits.get(1..).map(<[u8]>::to_vec);
            }
            rest = next;
        }
        None
    }

    /// PKCS#8 PrivateKeyInfo → the public key of the key inside it.
    pub(super) fn pkcs8_public(der: &[u8]) -> Option<Vec<u8>> {
        let (0x30, body, _) = tlv(der)? else {
            return None;
        };
        let (0x02, _, rest) = tlv(body)? else {
            return None;
        };
        let (0x30, alg, rest) = tlv(rest)? else {
            return None;
        };
        let (0x04, inner, mut rest) = tlv(rest)? else {
            return None;
        };
        // OneAsymmetricKey (v2) may carry the public key itself: [1] IMPLICIT BIT STRING.
        while !rest.is_empty() {
            let (tag, value, next) = tlv(rest)?;
            if tag == 0x81 {
                return value.get(1..).map(<[u8]>::to_vec);
            }
            rest = next;
        }
        let (0x06, oid, _) = tlv(alg)? else {
            return None;
        };
        match oid {
            // rsaEncryption
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01] => rsa_public(inner),
            // id-ecPublicKey
            [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01] => sec1_public(inner),
            // id-Ed25519: the inner OCTET STRING is the seed.
            [0x2b, 0x65, 0x70] => {
                let (0x04, seed, _) = tlv(inner)? else {
                    return None;
                };
                let kp = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed).ok()?;
                Some(ring::signature::KeyPair::public_key(&kp).as_ref().to_vec())
            }
            _ => None,
        }
    }
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
            let pem = private_pem(&kp);
            let back = load_private_pem(&pem).unwrap();
            assert_eq!(back.der_bytes(), kp.der_bytes());
            assert_eq!(back.pkcs8_der(), kp.pkcs8_der());
            // The PEM is what rcgen (and openssl) write and read.
            let theirs = rcgen::KeyPair::from_pem(&pem).unwrap();
            assert_eq!(theirs.serialize_pem(), *pem);
            assert_eq!(theirs.public_key_raw(), kp.der_bytes());
        }
    }
}
