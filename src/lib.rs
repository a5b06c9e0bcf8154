//! kpki: a certificate authority and PKI manager for Kubernetes clusters built by hand.
//!
//! Data flows one way: the [`inventory`] and the [`profile`]s make [`plan`]s; [`issue`]
//! turns plans into keys and certificates with [`pki`] (and secrets with [`encryption`])
//! and keeps them in the [`store`].
//! What comes back from disk (the store's files, staged trees, installed nodes) is read
//! through one reader: [`pki::pem`] for certificates and keys, [`material`] for files,
//! YAML and kubeconfigs kpki did not write; `render --check` and the [`audit`] judge it
//! with one verifier and report the same [`finding::Finding`]s.
//! The [`cli`] layer only describes arguments; [`commands`] is the one place that reads
//! the environment, the clock and the terminal, and prints. Nothing below `commands`
//! imports clap or prints.
#![forbid(unsafe_code)]

pub mod audit;
pub mod cli;
pub mod commands;
pub mod distribute;
pub mod encryption;
pub mod error;
pub mod finding;
pub mod fuzz;
pub mod inventory;
pub mod issue;
pub mod material;
pub mod pki;
pub mod plan;
pub mod profile;
pub mod render;
pub mod rotate;
pub mod source;
pub mod span;
pub mod stage;
pub mod store;
pub mod terminal;

pub use error::{Error, Result};
