//! Bundles for air-gapped nodes: `kpki bundle` writes a node's whole staged tree as one
//! file, the same install script a push sends over SSH (so the same atomic steps and
//! the same backups), optionally age-encrypted to a recipient; `kpki unbundle` runs it
//! on the node. An unencrypted bundle is a plain POSIX shell script: `sh FILE` installs
//! it on a node without kpki.
//!
//! Without a connection there is no diff: a bundle carries every file of the tree and
//! the node replaces each (backing up what it held). Files an earlier push installed
//! that the tree no longer has are left in place.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use super::{script, DistributeError, StagedTree, Upload};
use crate::stage::{FileKind, MANIFEST};
use crate::store as secrets;

/// The first line of an age file.
const AGE_ARMOR: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
const AGE_BINARY: &[u8] = b"age-encryption.org/v1";

/// The bundle of one node's staged tree: the install script, encrypted to `recipients`
/// when there are any.
pub fn bundle(
    tree: &StagedTree,
    node: &str,
    stamp: &str,
    recipients: &[String],
) -> Result<Zeroizing<Vec<u8>>, DistributeError> {
    let err = |message: String| DistributeError::Staged {
        node: node.to_owned(),
        message,
    };
    let mut contents = Vec::new();
    for e in &tree.manifest.files {
        if e.kind == FileKind::OnNode {
            continue;
        }
        let file = crate::render::refs::resolve(&tree.root, Path::new(&e.path));
        let b = super::read_regular(&file)
            .map_err(|x| err(format!("cannot read staged {}: {x}", file.display())))?;
        contents.push((b, e));
    }
    let manifest_sha = tree.manifest_sha256();
    let mut uploads: Vec<Upload<'_>> = contents
        .iter()
        .map(|(b, e)| Upload {
            path: &e.path,
            bytes: b,
            sha256: &e.sha256,
            mode: script::Safe::mode(&e.mode).unwrap_or(0o644),
            owner: &e.owner,
            group: &e.group,
        })
        .collect();
    uploads.push(Upload {
        path: MANIFEST,
        bytes: &tree.manifest_bytes,
        sha256: &manifest_sha,
        mode: 0o644,
        owner: "root",
        group: "root",
    });
    let body = script::install(&uploads, &[], stamp)?;
    let mut text = Zeroizing::new(format!(
        "#!/bin/sh\n# kpki bundle of node {node}: run `kpki unbundle FILE` (or `sh FILE`) on the node as root.\n"
    ));
    text.push_str(&body);
    text.push('\n');
    if recipients.is_empty() {
        return Ok(Zeroizing::new(text.as_bytes().to_vec()));
    }
    let r = secrets::parse_recipients(recipients).map_err(|e| err(e.to_string()))?;
    secrets::encrypt(&r, text.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| err(e.to_string()))
}

/// Whether a bundle is age-encrypted.
pub fn is_encrypted(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_ARMOR) || bytes.starts_with(AGE_BINARY)
}

/// Decrypts an encrypted bundle with the identities of an age identity file.
pub fn decrypt(bytes: &[u8], identity: &Path) -> Result<Zeroizing<Vec<u8>>, DistributeError> {
    let err = |message: String| DistributeError::Staged {
        node: "bundle".into(),
        message,
    };
    let ids = secrets::read_identity_file(identity).map_err(|e| err(e.to_string()))?;
    let dec = age::Decryptor::new(age::armor::ArmoredReader::new(bytes))
        .map_err(|e| err(format!("cannot decrypt: {e}")))?;
    let mut r = dec
        .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| err(format!("cannot decrypt with {}: {e}", identity.display())))?;
    let mut out = Zeroizing::new(Vec::new());
    r.read_to_end(&mut out)
        .map_err(|e| err(format!("cannot decrypt: {e}")))?;
    Ok(out)
}

/// Runs a (decrypted) bundle here with `sh -s`: returns the backup directory, or why it
/// failed (nothing changed, or what was replaced put back).
pub fn unbundle(script: &[u8]) -> Result<String, DistributeError> {
    let err = |message: String| DistributeError::Remote {
        node: "this node".into(),
        message,
    };
    if !script.starts_with(b"#!/bin/sh\n# kpki bundle of node ") {
        return Err(err("not a kpki bundle".into()));
    }
    let mut child = Command::new("sh")
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| err(format!("cannot run sh: {e}")))?;
    {
        let mut stdin = child.stdin.take().expect("piped");
        let _ = stdin.write_all(script);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("sh: {e}")))?;
    match super::result_line(&String::from_utf8_lossy(&out.stdout)) {
        Some(Ok(b)) => Ok(b),
        Some(Err(why)) => Err(err(why)),
        None => Err(err(format!(
            "the bundle ended without a result ({})",
            out.status
        ))),
    }
}
