//! Reading what other people's files hold, without trusting them: only regular files of
//! sane size, never blocking, and no walk into the kernel's pseudo file systems
//! ([`mod@file`]); the YAML configs and kubeconfigs that `render --check` and the audit read,
//! with alias expansion held to a budget ([`yaml`]); and the kubeconfig fields that name
//! or embed certificates and keys ([`kubeconfig`]), through one parser. The certificates
//! and keys themselves are decoded by [`crate::pki::pem`].

pub mod file;
pub mod kubeconfig;
pub mod yaml;
