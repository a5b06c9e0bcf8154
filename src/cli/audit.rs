//! `kpki audit`: arguments and the help text that becomes kpki-audit(1).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Output formats of `kpki audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// A table for people, sorted by time left, with findings and a summary line.
    Table,
    /// One JSON object: certificates, findings and summary (fields below).
    Json,
    /// Prometheus text for node_exporter's textfile collector (metrics below).
    Prometheus,
}

const AFTER: &str = "\
Examples:
  kpki audit                                   # on the CA host: the store; on a node: its certificate directories
  kpki audit /etc/kubernetes /etc/ssl/etcd --warn 45d --critical 14d
  kpki audit --store pki staged/               # a staged cluster tree, checked against the inventory and the store's CAs
  kpki audit --configs /                       # exactly the files this node's daemon configs reference
  kpki audit --quiet || mail -s \"certificates\" ops@example.com
  # cron, every night, for node_exporter's textfile collector:
  kpki audit --format prometheus --output /var/lib/prometheus/node-exporter/kpki.prom

What is checked:
  Every certificate in PEM (any number per file: chains, CA bundles, certificate+key
  files) or DER, whatever the file is called, and the certificate-authority-data and
  client-certificate-data of kubeconfigs. Its state: ok, warn (within --warn),
  critical (within --critical), expired, not_yet_valid.
  With the store or --ca: that it chains to one of those CAs (signature verified),
  and that no CA expires before a certificate it signed. Without them, a chain file's
  certificates are linked to the issuer later in the same file (by name and key
  identifier, without a signature check) so that CA's expiry is still compared.
  The private key next to a certificate (same file; etcd.crt/etcd.key; ca.pem/ca-key.pem;
  a kubeconfig user's client-key-data): that it belongs to the certificate, and that
  every private key file is mode 0600 or tighter.
  With the inventory, for the store, a staged tree (DIR/<node>/...) or a node (--node):
  the files the profiles install are there, with the CN, SANs and extended key usages
  the profile requires, signed by the profile's CA, with the store's CA in CA files.
  Across the run: days on which many certificates expire (--cliff), with the dates.
  Unreadable files, FIFOs, files that vanish, garbage, truncated PEM and symlink loops
  are findings; the audit never stops on one file. Work on hostile files is bounded:
  only regular files up to 8 MiB are read, YAML whose aliases would expand past a small
  budget is refused, certificates that sign each other in circles are settled once
  each, and pseudo file systems (/proc, /sys, ...) are not walked, wherever a link leads.
  --quiet prints only problems: certificates that are not ok, warning and error findings,
  no summary line (nothing at all when all is well).
  --now RFC3339 (not listed above) evaluates at another time than now: for tests, and
  for asking what will have expired by a date.

Exit status:
  0  every certificate ok, no failed check
  1  something within --warn, or a warning finding (an unreadable file, a broken symlink)
  2  something within --critical, expired or not yet valid, or a failed check (error finding)
  3  the audit itself could not run (bad arguments, unreadable inventory or store,
     none of the paths exists, the output cannot be written)
  Findings of severity info (vanished files, symlink loops, foreign CAs, expiry cliffs)
  do not change the exit status.

JSON (--format json), one object; the field names are stable:
  certificates[]   sorted by seconds_left
    path, index            the file, and the position in it (0 = first; a chain's leaf)
    encoding               pem | der | kubeconfig
    embedded_kind          cluster | user (kubeconfig data only)
    embedded_key           the kubeconfig cluster or user name (kubeconfig data only)
    subject, issuer        RFC 4514-style names
    serial                 hex, colon-separated (as openssl and kpki inspect print it)
    sans                   [\"DNS:…\", \"IP:…\"]
    ext_key_usage          [\"serverAuth\", \"clientAuth\", …]
    is_ca                  true for a CA certificate
    not_before, not_after  RFC 3339, UTC
    seconds_left           to not_after from the audit's time; negative once expired
    state                  ok | warn | critical | expired | not_yet_valid
    sha256                 fingerprint, colon-separated hex
    node, profile          the inventory node and kpki profile, or null
    chain                  {status, ca, ca_path, ca_not_after}; status is one of
                           unchecked (no CA to check against), anchor (is a trusted CA),
                           trusted (signature verified by ca), in_file (issued by a later
                           certificate of the same file; no trusted CA given), untrusted,
                           bad_signature (a trusted CA's name, not its key), foreign_root
    key                    {path, matches: true | false | null, mode: \"0600\"} or null
  findings[]       sorted by severity, errors first
    path                   the file or directory, or null for the whole run
    kind                   unreadable | vanished | too_large | unparsable | symlink_loop |
                           broken_symlink | untrusted_issuer | bad_signature | foreign_ca |
                           ca_expires_first | key_mismatch | key_mode | missing |
                           subject_mismatch | san_missing | eku_missing | wrong_ca |
                           ca_mismatch | expiry_cliff | wrong_use | outside_validity |
                           window_too_late
    severity               error | warn | info
    message                one line, with what to do
    embedded               {kind, key} for a finding about kubeconfig data
    named_by               [{config, key}]: the configs and keys that name the file, for
                           a finding of the config check (--configs), as render --check
                           prints it
  summary
    now, warn_seconds, critical_seconds, files, certificates, distinct, ok, warn,
    critical, expired, not_yet_valid, findings_error, findings_warn, findings_info,
    next_expiry {path, subject, not_after, seconds_left}, cliffs [{date, count}],
    sources [{kind, path, up}], exit_code

Prometheus (--format prometheus), the names of enix's x509-certificate-exporter so its
Grafana dashboard and alert rules work unchanged:
  x509_cert_not_before, x509_cert_not_after      Unix seconds
  x509_cert_expired                              1 expired, 0 not
  x509_cert_expires_in_seconds                   to not_after from the audit's time
  x509_cert_valid_since_seconds                  from not_before to the audit's time
    one series per certificate, labels: filename, filepath (absolute), serial_number (decimal),
    subject_C, subject_ST, subject_L, subject_O, subject_OU, subject_CN, the same six
    issuer_*, embedded_kind (cluster | user) and embedded_key for kubeconfig data,
    node and profile where kpki knows them; empty labels are left out; discriminator
    only when two certificates would otherwise share every label
  x509_cert_error{filename, filepath[, embedded_kind, embedded_key]}
                                                 1 could not read or parse, 0 read
  x509_read_errors                               files that could not be read or parsed
  x509_source_up{source_kind, source_name}       1 per path audited, 0 if it could not be
  kpki_audit_certificates{state}                 count per state
  kpki_audit_findings{kind, severity}            count per finding kind (0 when none)
  kpki_audit_exit_status                         the exit status above
  kpki_audit_timestamp_seconds                   when the audit ran
  With --output the file is replaced atomically (temporary file, fsync, rename), so the
  collector never reads half of it; name it *.prom.";

/// Audit certificates: expiry, chain, keys and what the inventory expects.
///
/// Walks the given paths (in parallel, reading each file once) and reports every
/// certificate with its time left, sorted by it, with findings about chains, keys, key
/// modes, missing or wrong files, and unreadable or broken ones. Made to run from cron
/// on every node and on the CA host: alert on its exit status or its metrics.
///
/// Without PATH, audits the store when --store names one, else this node's certificate
/// directories: /etc/kubernetes, /etc/ssl/etcd, /etc/etcd, /var/lib/kubelet/pki and the
/// directories the profiles install into.
#[derive(Debug, Args)]
#[command(after_long_help = AFTER)]
pub struct AuditArgs {
    /// Directories or files to audit (walked recursively, symlinks followed without loops).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Warn about certificates with less than this left: a number and h, d, w or y.
    #[arg(long, default_value = "30d", value_name = "SPAN")]
    pub warn: String,
    /// Fail on certificates with less than this left (and on expired ones).
    #[arg(long, default_value = "7d", value_name = "SPAN")]
    pub critical: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: AuditFormat,
    /// Write the output to this file, atomically, instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// A CA certificate file that certificates must chain to, repeatable (in addition
    /// to the store's CAs).
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// The inventory node this machine (or the staged directory given) is.
    ///
    /// Defaults to the node whose name or FQDN is this host's name, when auditing the
    /// node's own directories.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Audit exactly the certificates, keys, CA files and embedded kubeconfig data that
    /// the node's etcd, flanneld, kubelet, kube-proxy and control-plane configs reference,
    /// under TREE (/ on the node, a staged node tree DIR/<node> from `kpki apply`, or the
    /// whole staged DIR, node by node).
    ///
    /// The configs are read and checked as `kpki render --check` reads and checks them
    /// (systemd units and drop-ins, static pods, kubeconfigs, the KubeletConfiguration,
    /// options.env): every problem it finds is a finding naming the configs and keys
    /// (a referenced file that does not exist is "missing", a key that does not match its
    /// certificate "key_mismatch", …). The CA files the configs name are trusted CAs for
    /// the chain check.
    #[arg(long, value_name = "TREE")]
    pub configs: Option<PathBuf>,
    /// Report a day on which at least this many distinct certificates expire.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub cliff: usize,
    /// The maintenance window rotations run in ("Sat 02:00-04:00 UTC", as for `kpki
    /// rotate --window`): with a store, warn (window_too_late) about every certificate
    /// whose renewal margin (its profile's renew_before) holds no opening of the window.
    #[arg(long, value_name = "WINDOW")]
    pub window: Option<String>,
    /// Worker threads, 1 to 256 (default: one per core).
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256)
    )]
    pub threads: Option<usize>,
    /// Evaluate at this time instead of now (RFC 3339). For tests and for asking "what
    /// will have expired by then".
    #[arg(long, hide = true, value_name = "RFC3339")]
    pub now: Option<String>,
}
