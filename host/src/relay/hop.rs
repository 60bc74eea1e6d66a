//! A next hop the operator grants a delivery realm: where it is
//! (`smtp://HOST:PORT`, `lmtp://HOST:PORT`, `lmtp:unix:/PATH`), whether
//! the host passes the client on with XCLIENT, TLS, and the timeouts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Lmtp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Lmtp => "lmtp",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `host:port`.
    Tcp(String),
    Unix(PathBuf),
}

/// A next hop's URL, parsed: `smtp://HOST[:PORT]` (port 25),
/// `lmtp://HOST[:PORT]` (port 24), `smtp:unix:/PATH`, `lmtp:unix:/PATH`.
pub fn parse_url(url: &str) -> anyhow::Result<(Protocol, Address)> {
    let hint = "write smtp://HOST:PORT, lmtp://HOST:PORT or lmtp:unix:/PATH";
    let (protocol, rest) = if let Some(rest) = url.strip_prefix("smtp:") {
        (Protocol::Smtp, rest)
    } else if let Some(rest) = url.strip_prefix("lmtp:") {
        (Protocol::Lmtp, rest)
    } else {
        bail!("next hop \"{url}\": unknown scheme; {hint}");
    };
    if let Some(path) = rest.strip_prefix("unix:") {
        if !path.starts_with('/') {
            bail!("next hop \"{url}\": the socket path must be absolute; {hint}");
        }
        return Ok((protocol, Address::Unix(PathBuf::from(path))));
    }
    let Some(authority) = rest.strip_prefix("//") else {
        bail!("next hop \"{url}\": {hint}");
    };
    let authority = authority.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        bail!("next hop \"{url}\": give only a host and a port; {hint}");
    }
    let default_port = match protocol {
        Protocol::Smtp => 25,
        Protocol::Lmtp => 24,
    };
    // HOST, HOST:PORT, [IPV6] or [IPV6]:PORT.
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            bail!("next hop \"{url}\": an IPv6 address needs its closing ]; {hint}");
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            bail!("next hop \"{url}\": [{v6}] is no IPv6 address; {hint}");
        }
        match after {
            "" => (format!("[{v6}]"), None),
            _ => match after.strip_prefix(':') {
                Some(port) => (format!("[{v6}]"), Some(port)),
                None => bail!("next hop \"{url}\": {hint}"),
            },
        }
    } else {
        match authority.split_once(':') {
            None => (authority.to_owned(), None),
            Some((_, port)) if port.contains(':') => {
                bail!("next hop \"{url}\": write an IPv6 address in brackets, [::1]:25")
            }
            Some((host, port)) => (host.to_owned(), Some(port)),
        }
    };
    if host.is_empty() {
        bail!("next hop \"{url}\": no host; {hint}");
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .with_context(|| format!("next hop \"{url}\": bad port \"{port}\""))?,
    };
    let address = format!("{host}:{port}");
    Ok((protocol, Address::Tcp(address)))
}

/// How long each step may take (each also ends before the plugin's own
/// deadline for the call in progress).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect, greeting, EHLO, STARTTLS and XCLIENT.
    pub connect: Duration,
    /// MAIL, RCPT, RSET, DATA (the 354).
    pub command: Duration,
    /// Sending the message and the reply to its final dot.
    pub data: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(30),
            data: Duration::from_secs(60),
        }
    }
}

/// TLS to the next hop (STARTTLS), verified against the operator's CA
/// file, or not verified at all when the operator says so explicitly.
#[derive(Clone)]
pub struct TlsClient {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

/// One granted next hop.
#[derive(Clone)]
pub struct NextHop {
    /// The name the realm uses.
    pub name: String,
    /// The URL as the operator wrote it, for logs (it holds no secret).
    pub url: String,
    pub protocol: Protocol,
    pub address: Address,
    /// Pass the client's address and login with XCLIENT when the hop
    /// offers it.
    pub xclient: bool,
    pub tls: Option<TlsClient>,
    /// The name portcullis gives in EHLO/LHLO.
    pub helo: String,
    pub timeouts: Timeouts,
}

impl std::fmt::Debug for NextHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NextHop")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("xclient", &self.xclient)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// TLS settings as the operator gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TlsSetting {
    #[default]
    None,
    StartTls {
        ca: Option<PathBuf>,
        insecure_skip_verify: bool,
    },
}

impl NextHop {
    pub fn new(
        name: &str,
        url: &str,
        xclient: bool,
        tls: &TlsSetting,
        helo: &str,
        timeouts: Timeouts,
    ) -> anyhow::Result<NextHop> {
        let (protocol, address) = parse_url(url)?;
        let tls = match tls {
            TlsSetting::None => None,
            TlsSetting::StartTls {
                ca,
                insecure_skip_verify,
            } => {
                let host = match &address {
                    Address::Tcp(a) => a.rsplit_once(':').map(|(h, _)| h).unwrap_or(a),
                    Address::Unix(_) => "localhost",
                };
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let server_name = ServerName::try_from(host.to_owned())
                    .with_context(|| format!("next hop {url}: \"{host}\" is no TLS server name"))?;
                Some(TlsClient {
                    connector: connector(ca.as_deref(), *insecure_skip_verify)?,
                    server_name,
                })
            }
        };
        Ok(NextHop {
            name: name.to_owned(),
            url: url.to_owned(),
            protocol,
            address,
            xclient,
            tls,
            helo: helo.to_owned(),
            timeouts,
        })
    }
}

fn connector(ca: Option<&Path>, insecure: bool) -> anyhow::Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match (ca, insecure) {
        (Some(_), true) => {
            bail!("give either tls-ca = \"FILE\" or tls-insecure-skip-verify = true, not both")
        }
        (Some(ca), false) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("tls-ca {}: cannot read", ca.display()))?
            {
                let cert =
                    cert.with_context(|| format!("tls-ca {}: not a PEM file", ca.display()))?;
                roots.add(cert).with_context(|| {
                    format!("tls-ca {}: a certificate is unusable", ca.display())
                })?;
            }
            if roots.is_empty() {
                bail!("tls-ca {}: no CERTIFICATE block found", ca.display());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (None, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
        (None, false) => bail!(
            "tls = \"starttls\" needs tls-ca = \"FILE\" (the CA that signed the next hop's \
             certificate), or tls-insecure-skip-verify = true to accept any certificate"
        ),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `tls-insecure-skip-verify = true`: any certificate is accepted (the
/// signatures of the handshake are still checked).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let tcp = |s: &str| Address::Tcp(s.into());
        let cases = [
            (
                "smtp://127.0.0.1:2525",
                Protocol::Smtp,
                tcp("127.0.0.1:2525"),
            ),
            ("smtp://mx.example", Protocol::Smtp, tcp("mx.example:25")),
            ("lmtp://127.0.0.1", Protocol::Lmtp, tcp("127.0.0.1:24")),
            ("lmtp://[::1]:24/", Protocol::Lmtp, tcp("[::1]:24")),
            ("lmtp://[::1]", Protocol::Lmtp, tcp("[::1]:24")),
            (
                "lmtp:unix:/run/dovecot/lmtp",
                Protocol::Lmtp,
                Address::Unix("/run/dovecot/lmtp".into()),
            ),
        ];
        for (url, protocol, address) in cases {
            assert_eq!(parse_url(url).unwrap(), (protocol, address), "{url}");
        }
        for bad in [
            "http://x",
            "smtp:x",
            "smtp://",
            "smtp://h:0",
            "smtp://h:x",
            "smtp://u:p@h:25",
            "lmtp:unix:relative",
            "smtp://:25",
            "smtp://::1:25",
            "smtp://[::1",
            "smtp://[nothost]:25",
            "smtp://[::1]x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn starttls_needs_an_explicit_trust_choice() {
        let none = TlsSetting::StartTls {
            ca: None,
            insecure_skip_verify: false,
        };
        let err = NextHop::new(
            "mta",
            "smtp://127.0.0.1:25",
            false,
            &none,
            "h",
            Timeouts::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("tls-ca"), "{err}");
        let insecure = TlsSetting::StartTls {
            ca: None,
            insecure_skip_verify: true,
        };
        NextHop::new(
            "mta",
            "smtp://127.0.0.1:25",
            false,
            &insecure,
            "h",
            Timeouts::default(),
        )
        .unwrap();
    }
}
