//! `[tls]`: the certificate and key, client CAs, and where a generated
//! certificate is written.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::plan::TlsPlan;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TlsTable {
    cert: Option<Spanned<PathBuf>>,
    key: Option<Spanned<PathBuf>>,
    client_ca: Option<Spanned<PathBuf>>,
    cert_out: Option<Spanned<PathBuf>>,
}

pub(super) fn plan(
    src: &Source,
    table: &Spanned<TlsTable>,
    plan: &mut TlsPlan,
) -> Result<(), ConfigError> {
    let tls = table.get_ref();
    // Cert and key go together: a flag for either keeps the file's pair out.
    if !plan.cert.origin.is_flag() && !plan.key.origin.is_flag() {
        match (&tls.cert, &tls.key) {
            (Some(c), Some(k)) => {
                plan.cert.offer(Some(Some(src.relative(c.get_ref()))), || {
                    src.origin(c.span().start, "[tls] cert")
                });
                plan.key.offer(Some(Some(src.relative(k.get_ref()))), || {
                    src.origin(k.span().start, "[tls] key")
                });
            }
            (None, None) => {}
            _ => {
                let at = src.text.find("[tls]").unwrap_or(table.span().start);
                return Err(src.error(
                    at,
                    "[tls] needs both cert and key, or neither (a self-signed certificate)",
                ));
            }
        }
    }
    for (setting, value, key) in [
        (&mut plan.client_ca, &tls.client_ca, "[tls] client-ca"),
        (&mut plan.cert_out, &tls.cert_out, "[tls] cert-out"),
    ] {
        if let Some(path) = value {
            setting.offer(Some(Some(src.relative(path.get_ref()))), || {
                src.origin(path.span().start, key)
            });
        }
    }
    Ok(())
}
