//! The crate's error, its exit class, and the one line a user sees.
//!
//! Every module has its own error enum; this one wraps them, decides the exit status
//! (1: usage, input or environment; 2: refused by policy) and renders the message with
//! its hint, so no command formats its own fatal errors.

use std::path::PathBuf;

use crate::audit::AuditError;
use crate::distribute::DistributeError;
use crate::inventory::InventoryError;
use crate::issue::{IssueError, PolicyError};
use crate::pki::PkiError;
use crate::plan::PlanError;
use crate::profile::ProfileError;
use crate::render::refs::ReadError;
use crate::render::RenderError;
use crate::rotate::RotateError;
use crate::stage::StageError;
use crate::store::StoreError;

/// Exit status classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Bad usage, bad input, or the environment (exit 1).
    Input,
    /// Refused by policy (exit 2).
    Policy,
}

impl Class {
    pub fn code(self) -> u8 {
        match self {
            Class::Input => 1,
            Class::Policy => 2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Distribute(#[from] DistributeError),
    #[error(transparent)]
    Rotate(#[from] RotateError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A usage problem found after argument parsing, in smallstep's flag grammar.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
}

impl From<IssueError> for Error {
    fn from(e: IssueError) -> Error {
        match e {
            IssueError::Policy(p) => Error::Policy(p),
            IssueError::Store(s) => Error::Store(s),
            IssueError::Pki(p) => Error::Pki(p),
            IssueError::Io { path, source } => Error::Io { path, source },
            IssueError::Stage(s) => Error::Stage(s),
        }
    }
}

impl Error {
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub fn class(&self) -> Class {
        match self {
            Error::Policy(_) => Class::Policy,
            Error::Store(StoreError::Exists { .. })
            | Error::Store(StoreError::AlreadyExists(_)) => Class::Policy,
            Error::Store(StoreError::Pki(p)) | Error::Pki(p) => match p {
                PkiError::WeakKey(_) | PkiError::UnsupportedKey(_) | PkiError::CsrSignature => {
                    Class::Policy
                }
                _ => Class::Input,
            },
            Error::Plan(PlanError::RoleMismatch { .. } | PlanError::ClusterScoped(_)) => {
                Class::Policy
            }
            // `render --check` found problems in what the configs reference.
            Error::Render(RenderError::CheckFailed { .. } | RenderError::Unverified { .. }) => {
                Class::Policy
            }
            Error::Store(StoreError::Refused(..)) => Class::Policy,
            _ => Class::Input,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Inventory(e) => e.hint(),
            Error::Profile(e) => e.hint(),
            Error::Plan(e) => e.hint(),
            Error::Store(e) => e.hint(),
            Error::Policy(e) => e.hint(),
            Error::Render(e) => e.hint(),
            Error::Stage(e) => e.hint(),
            Error::Pki(PkiError::WeakKey(_)) => {
                Some("make the key again with at least 2048 bits (RSA) or as ECDSA P-256".into())
            }
            Error::Pki(PkiError::CsrSignature) => {
                Some("make the CSR again on the node with `kpki csr` or `openssl req -new`".into())
            }
            Error::Pki(PkiError::Validity(_)) => Some(crate::pki::VALIDITY_HINT.into()),
            Error::Pki(PkiError::BadCsr(_)) => Some(
                "pass a PEM or DER PKCS#10 request, such as one from `openssl req -new`".into(),
            ),
            Error::Usage { hint, .. } => hint.clone(),
            Error::Audit(e) => e.hint(),
            Error::Distribute(e) => e.hint(),
            Error::Rotate(e) => e.hint(),
            _ => None,
        }
        .or_else(|| self.refused_hint())
    }

    /// The fix for a write kpki refused (a symbolic link on the way, a special file).
    fn refused_hint(&self) -> Option<String> {
        let mut src = std::error::Error::source(self);
        while let Some(e) = src {
            let inner = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<crate::store::atomic::Refused>());
            if let Some(r) = inner.or_else(|| e.downcast_ref()) {
                return Some(if r.is_link() {
                    "kpki never writes through a symbolic link: remove it, or name the real path (realpath)".into()
                } else {
                    "name a path where a regular file (or nothing) is".into()
                });
            }
            src = e.source();
        }
        None
    }

    /// The one line printed for this error: `error: <what>; hint: <fix>`.
    pub fn render(&self) -> String {
        let mut s = format!("error: {self}");
        let mut src = std::error::Error::source(self);
        // Wrapped I/O and parse causes go on the same line, ripgrep-style.
        while let Some(e) = src {
            let t = e.to_string();
            if !s.contains(&t) {
                s.push_str(": ");
                s.push_str(&t);
            }
            src = e.source();
        }
        if let Some(h) = self.hint() {
            s.push_str("; hint: ");
            s.push_str(&h);
        }
        s.replace('\n', " ")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
