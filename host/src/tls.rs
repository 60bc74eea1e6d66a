//! TLS for the listeners (rustls with the *ring* provider): a certificate
//! and key from PEM files, or a self-signed pair generated at start-up for
//! a default run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A ready TLS acceptor and where its certificate came from.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// How the certificate was obtained, for the start-up banner.
    pub source: String,
}

impl Tls {
    /// Loads a certificate chain and its private key from PEM files.
    /// With `client_ca`, clients may present a certificate issued by it
    /// (for SASL EXTERNAL); clients without one are still served.
    pub fn from_files(cert: &Path, key: &Path, client_ca: Option<&Path>) -> anyhow::Result<Tls> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("--tls-cert {}: cannot read", cert.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("--tls-cert {}: not a PEM certificate", cert.display()))?;
        if chain.is_empty() {
            bail!(
                "--tls-cert {}: no CERTIFICATE block found; give a PEM file",
                cert.display()
            );
        }
        let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
            format!(
                "--tls-key {}: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM)",
                key.display()
            )
        })?;
        let config = server_config(chain, key, client_ca)
            .context("the TLS certificate and key do not go together")?;
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            source: format!("certificate from {}", cert.display()),
        })
    }

    /// Generates a self-signed certificate for `server_name`, 127.0.0.1 and
    /// ::1, and writes it (not the key) to `cert_out` so clients can trust
    /// it.
    pub fn self_signed(
        server_name: &str,
        cert_out: &Path,
        client_ca: Option<&Path>,
    ) -> anyhow::Result<Tls> {
        let names = vec![
            server_name.to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
        std::fs::write(cert_out, cert.pem())
            .with_context(|| format!("cannot write the certificate to {}", cert_out.display()))?;
        let key = PrivateKeyDer::try_from(signing_key.serialize_der())
            .map_err(|e| anyhow::anyhow!("generated key: {e}"))?;
        let config = server_config(vec![cert.der().clone()], key, client_ca)?;
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            source: format!(
                "self-signed certificate for {server_name}, written to {}",
                cert_out.display()
            ),
        })
    }
}

/// Where a default run puts its generated certificate.
pub fn default_cert_path() -> PathBuf {
    std::env::temp_dir().join(format!("portcullis-{}-cert.pem", std::process::id()))
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<&Path>,
) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match client_ca {
        None => builder.with_no_client_auth().with_single_cert(chain, key)?,
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("--tls-client-ca {}: cannot read", path.display()))?
            {
                let cert = cert.with_context(|| {
                    format!("--tls-client-ca {}: not a PEM certificate", path.display())
                })?;
                roots.add(cert).with_context(|| {
                    format!("--tls-client-ca {}: unusable certificate", path.display())
                })?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .allow_unauthenticated()
                    .build()?;
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)?
        }
    };
    Ok(config)
}

/// The identity a verified client certificate establishes, for SASL
/// EXTERNAL: the subject's common name, or else its first e-mail address
/// (subjectAltName rfc822Name).
pub fn peer_identity(conn: &rustls::ServerConnection) -> Option<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let leaf = conn.peer_certificates()?.first()?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    common_name.or_else(|| {
        let san = cert.subject_alternative_name().ok()??;
        san.value.general_names.iter().find_map(|name| match name {
            GeneralName::RFC822Name(email) => Some((*email).to_owned()),
            _ => None,
        })
    })
}
