//! `kpki inspect`: a readable (or JSON) summary of certificates and CSRs.

use super::*;

#[derive(serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Inspected {
    Certificate {
        file: String,
        #[serde(flatten)]
        summary: Box<pki::CertSummary>,
    },
    Csr {
        file: String,
        subject: String,
        sans: Vec<String>,
        key: pki::KeyInfo,
        requests_ca: bool,
    },
}

pub(super) fn run(a: &InspectArgs, now: OffsetDateTime, p: &mut Printer) -> Result<()> {
    let mut all = Vec::new();
    for f in &a.files {
        let bytes = crate::source::read(f).map_err(Error::io(f))?;
        let objs = pki::pem::objects(&bytes).map_err(|m| {
            Error::Pki(pki::PkiError::BadCertificate(format!(
                "{}: {m}",
                f.display()
            )))
        })?;
        for o in objs {
            let file = f.display().to_string();
            match o {
                Object::Certificate(der) => all.push(Inspected::Certificate {
                    file,
                    summary: Box::new(pki::summarize(&der, now)?),
                }),
                Object::Csr(der) => {
                    let i = pki::parse_csr(&der)?;
                    all.push(Inspected::Csr {
                        file,
                        subject: i.subject,
                        sans: i.requested_sans.iter().map(|s| s.to_string()).collect(),
                        key: i.key,
                        requests_ca: i.requests_ca,
                    });
                }
                // A key in the file is noted by type only; its contents are never printed.
                Object::PrivateKey(_) | Object::PublicKey(_) | Object::Other => {}
            }
        }
    }
    if a.json {
        return p.data(serde_json::to_string_pretty(&all).expect("serializes"));
    }
    for (n, i) in all.iter().enumerate() {
        if n > 0 {
            p.text("")?;
        }
        match i {
            Inspected::Certificate { file, summary: s } => {
                let state = if s.seconds_left < 0 {
                    "EXPIRED".to_string()
                } else if s.not_before > now {
                    "not yet valid".to_string()
                } else {
                    format!("{} left", human_left(s.seconds_left))
                };
                p.text(format!(
                    "{file}: certificate{}",
                    if s.is_ca { " (CA)" } else { "" }
                ))?;
                p.text(format!("  subject      {}", s.subject))?;
                p.text(format!("  issuer       {}", s.issuer))?;
                p.text(format!("  serial       {}", s.serial))?;
                p.text(format!(
                    "  validity     {} .. {}  ({state})",
                    pki::rfc3339(s.not_before),
                    pki::rfc3339(s.not_after)
                ))?;
                p.text(format!("  key          {} {}", s.key.algorithm, s.key.bits))?;
                if !s.sans.is_empty() {
                    p.text(format!("  SANs         {}", s.sans.join(", ")))?;
                }
                p.text(format!("  key usage    {}", s.key_usage.join(", ")))?;
                if !s.ext_key_usage.is_empty() {
                    p.text(format!("  ext usage    {}", s.ext_key_usage.join(", ")))?;
                }
                if let Some(k) = &s.subject_key_id {
                    p.text(format!("  subject key  {k}"))?;
                }
                if let Some(k) = &s.authority_key_id {
                    p.text(format!("  issuer key   {k}"))?;
                }
                p.text(format!("  sha256       {}", s.sha256))?;
            }
            Inspected::Csr {
                file,
                subject,
                sans,
                key,
                requests_ca,
            } => {
                p.text(format!(
                    "{file}: certificate signing request (signature verified)"
                ))?;
                p.text(format!("  subject      {subject}"))?;
                p.text(format!("  key          {} {}", key.algorithm, key.bits))?;
                if !sans.is_empty() {
                    p.text(format!("  SANs         {}", sans.join(", ")))?;
                }
                if *requests_ca {
                    p.text("  asks for     CA:TRUE (kpki will refuse to sign it)")?;
                }
            }
        }
    }
    Ok(())
}
