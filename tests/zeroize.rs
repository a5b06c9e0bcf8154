//! Key material is wiped after use: this test binary's allocator looks, in every block
//! freed while it is armed, for a private key's secret (its private scalar, seed or
//! prime, the PEM body line that encodes it) and counts each block freed with it still
//! inside. Armed, the test generates keys of every algorithm, writes them as PEM, reads
//! them back, makes a CA, a CSR and a leaf with them (as kpki's library does for
//! `init`, `csr`, `issue` and `sign`), and opens a store's CA key to sign, then drops it
//! all: no block may be freed holding the secret. (rcgen's `KeyPair` fails this: it frees
//! its PKCS#8 copies unwiped.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use base64::Engine;
use kpki::pki;

const MAX: usize = 512;
const SLOTS: usize = 4;

/// The secrets looked for: written only while disarmed, read only while armed.
struct Needles(UnsafeCell<[(usize, [u8; MAX]); SLOTS]>);

// SAFETY: written by the one test holding `SERIAL` while `ARMED` is false, read by
// `dealloc` only while it is true (set and cleared with SeqCst after and before writes).
unsafe impl Sync for Needles {}

static NEEDLES: Needles = Needles(UnsafeCell::new([(0, [0; MAX]); SLOTS]));
static ARMED: AtomicBool = AtomicBool::new(false);
static LEAKS: AtomicUsize = AtomicUsize::new(0);
/// One armed section at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Scanning;

// SAFETY: every call is forwarded to `System`; `dealloc` and `realloc` only read the block
// they are given (still allocated at that point) before forwarding. Spare capacity in the block may never
// have been written; it is only compared, byte by byte, and the answer is a test verdict.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if unsafe { holds_secret(ptr, layout.size()) } {
            LEAKS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    // A buffer that moves when it is resized leaves its old block behind, freed: a leak
    // when it held the secret. One resized in place leaves nothing.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let held = unsafe { holds_secret(ptr, layout.size()) };
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if held && !new.is_null() && new != ptr {
            LEAKS.fetch_add(1, Ordering::SeqCst);
        }
        new
    }
}

/// Whether the allocated block at `ptr` holds one of the armed secrets.
unsafe fn holds_secret(ptr: *mut u8, size: usize) -> bool {
    if !ARMED.load(Ordering::SeqCst) {
        return false;
    }
    let block = unsafe { std::slice::from_raw_parts(ptr, size) };
    let needles = unsafe { &*NEEDLES.0.get() };
    needles.iter().any(|(len, bytes)| {
        let n = &bytes[..*len];
        !n.is_empty() && block.windows(n.len()).any(|w| w == n)
    })
}

#[global_allocator]
static GLOBAL: Scanning = Scanning;

/// Splits one DER TLV off the front: (tag, value, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    Some((tag, b.get(head..head + len)?, b.get(head + len..)?))
}

/// A private number of a PKCS#8 key (EC scalar, Ed25519 seed, RSA's first prime) and its
/// offset in the DER.
fn secret_of(pkcs8: &[u8]) -> (usize, &[u8]) {
    let (_, body, _) = tlv(pkcs8).unwrap();
    let (_, _version, rest) = tlv(body).unwrap();
    let (_, _alg, rest) = tlv(rest).unwrap();
    let (_, inner, _) = tlv(rest).unwrap();
    let n = match tlv(inner).unwrap() {
        (0x04, seed, _) => seed,
        (_, key, _) => {
            let (_, _version, rest) = tlv(key).unwrap();
            match tlv(rest).unwrap() {
                (0x04, scalar, _) => scalar,
                (_, _n, rest) => {
                    let (_, _e, rest) = tlv(rest).unwrap();
                    let (_, _d, rest) = tlv(rest).unwrap();
                    tlv(rest).unwrap().1
                }
            }
        }
    };
    (n.as_ptr() as usize - pkcs8.as_ptr() as usize, n)
}

/// Arms the allocator with the secrets of the key in `pem` (read in wiped buffers).
fn arm(pem: &str) {
    let body = zeroize::Zeroizing::new(
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>(),
    );
    let der = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .unwrap(),
    );
    let (at, secret) = secret_of(&der);
    // The PEM line that encodes the secret's first bytes.
    let line = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .nth(at / 48)
        .unwrap();
    assert!(secret.len() >= 16 && line.len() >= 16);
    let needles = unsafe { &mut *NEEDLES.0.get() };
    for (slot, n) in needles.iter_mut().zip([secret, line.as_bytes()]) {
        slot.0 = n.len().min(MAX);
        slot.1[..slot.0].copy_from_slice(&n[..slot.0]);
    }
    LEAKS.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
}

/// Disarms and returns how many blocks were freed holding a secret.
fn disarm() -> usize {
    ARMED.store(false, Ordering::SeqCst);
    let needles = unsafe { &mut *NEEDLES.0.get() };
    for slot in needles.iter_mut() {
        *slot = (0, [0; MAX]);
    }
    LEAKS.load(Ordering::SeqCst)
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[test]
fn keys_are_wiped_when_generated_written_read_and_used_to_sign() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for alg in [
        pki::KeyAlgorithm::EcdsaP256,
        pki::KeyAlgorithm::EcdsaP384,
        pki::KeyAlgorithm::Ed25519,
        pki::KeyAlgorithm::Rsa2048,
    ] {
        let leaf = pki::KeyAlgorithm::EcdsaP256.generate().unwrap();
        let key = alg.generate().unwrap();
        {
            let pem = pki::private_pem(&key);
            arm(&pem);
        }
        let leaks = {
            // As `init` does: a CA from the key, its PEM sealed.
            let ca = pki::new_ca(
                &pki::CaSpec {
                    cn: "test CA",
                    o: "test",
                    not_before: now(),
                    not_after: now() + time::Duration::days(30),
                },
                &key,
            )
            .unwrap();
            let pem = pki::private_pem(&key);
            // As `csr` does.
            let csr = pki::csr("node", &[], &[], &key).unwrap();
            drop(csr);
            drop(key);
            // As `issue` and `sign` do: the CA key read back from its PEM, signing.
            let back = pki::load_private_pem(&pem).unwrap();
            drop(pem);
            let signer = pki::Signer::new(&ca, back).unwrap();
            let spec = pki::LeafSpec {
                cn: "leaf".into(),
                o: vec![],
                sans: vec![],
                ext_key_usage: vec![],
                rsa_key: false,
                not_before: now(),
                not_after: now() + time::Duration::days(1),
            };
            let cert = pki::sign(&spec, &leaf, &signer).unwrap();
            drop(cert);
            drop(signer);
            disarm()
        };
        assert_eq!(
            leaks, 0,
            "{alg}: {leaks} block(s) freed still holding the private key"
        );
    }
}

#[test]
fn a_store_ca_key_is_wiped_after_signing() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    let identity = d.path().join("identity.txt");
    let store = d.path().join("pki");
    let spec = kpki::store::InitSpec {
        cluster: "test".into(),
        model: Some(kpki::store::CaModel::Single),
        key: pki::KeyAlgorithm::EcdsaP256,
        validity: "1y".parse().unwrap(),
        protection: kpki::store::Protection::Identity {
            file: identity.clone(),
            extra: vec![],
        },
        force: false,
    };
    let (s, lock, _) = kpki::store::Store::init(&store, spec, now()).unwrap();
    let unlock = kpki::store::Unlock::IdentityFile(identity);
    let keyring = s.keyring(&unlock).unwrap();
    let role = kpki::profile::CaRole::Kubernetes;
    {
        let pem = s.open_ca_key(role, &keyring).unwrap();
        arm(std::str::from_utf8(&pem).unwrap());
    }
    let signer = s.signer(role, &keyring).unwrap();
    drop(signer);
    let leaks = disarm();
    drop(lock);
    assert_eq!(
        leaks, 0,
        "{leaks} block(s) freed still holding the CA key after it was opened to sign"
    );
}
