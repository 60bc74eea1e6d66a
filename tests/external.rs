//! SASL EXTERNAL over SMTP: the identity of a client certificate the host
//! verified against the operator's CA (`--tls-client-ca`), allowed by the
//! external checker (`--auth external:…`).

use crate::common;

use std::net::TcpStream;
use std::path::Path;

use common::{Server, TlsClient};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

/// A CA, written to `dir/ca.pem`, that issues client certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate for `cn`: (chain, key) in DER.
    fn client(&self, cn: &str) -> (Vec<Vec<u8>>, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (vec![cert.der().to_vec()], key.serialize_der())
    }
}

fn starttls(server: &Server, identity: Option<(Vec<Vec<u8>>, Vec<u8>)>) -> TlsClient {
    let mut c = server.smtp_client();
    c.cmd("EHLO client.example").expect(250, None);
    c.cmd("STARTTLS").expect(220, Some("2.0.0"));
    let tcp: TcpStream = c.into_stream();
    let mut tls = TlsClient::connect_as(tcp, &server.cert_path(), identity);
    tls.cmd("EHLO client.example").expect(250, None);
    tls
}

#[test]
fn a_verified_client_certificate_logs_in_with_external() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "clients-ca");
    let rogue = Ca::new(dir.path(), "rogue-ca");
    let ca_path = dir.path().join("clients-ca.pem");
    let server = Server::start(&[
        "--auth-failure-delay",
        "0s",
        "--tls-client-ca",
        ca_path.to_str().unwrap(),
        "--auth",
        "memory:guest:password",
        "--auth",
        "external:alice",
    ]);

    let mut tls = starttls(&server, Some(ca.client("alice")));
    let ehlo = tls.cmd("EHLO client.example");
    assert!(ehlo.text().contains("EXTERNAL"), "{ehlo:?}");
    tls.cmd("AUTH EXTERNAL =").expect(235, Some("2.7.0"));
    tls.cmd("MAIL FROM:<alice@example.com>")
        .expect(250, Some("2.1.0"));

    // Via an empty challenge, asking to act as itself.
    let mut tls = starttls(&server, Some(ca.client("alice")));
    assert_eq!(tls.cmd("AUTH EXTERNAL").code, 334);
    tls.cmd(&common::b64(b"alice")).expect(235, Some("2.7.0"));

    // Another identity from the same CA, not allowed; another authzid.
    let mut tls = starttls(&server, Some(ca.client("mallory")));
    tls.cmd("AUTH EXTERNAL =").expect(535, Some("5.7.8"));
    let mut tls = starttls(&server, Some(ca.client("alice")));
    tls.cmd(&format!("AUTH EXTERNAL {}", common::b64(b"root")))
        .expect(535, Some("5.7.8"));

    // No certificate: EXTERNAL has nothing to go on.
    let mut tls = starttls(&server, None);
    tls.cmd("AUTH EXTERNAL =").expect(535, Some("5.7.8"));
    // Over plain TCP there is no certificate either.
    let mut plain = server.smtp_client();
    plain.cmd("EHLO client.example").expect(250, None);
    plain.cmd("AUTH EXTERNAL =").expect(535, Some("5.7.8"));
    let logs = server.wait_for_log("no verified client certificate");
    assert!(logs.contains("avatar_id=\"alice\""), "{logs}");

    // A certificate from another CA fails the handshake itself.
    let mut c = server.smtp_client();
    c.cmd("EHLO client.example").expect(250, None);
    c.cmd("STARTTLS").expect(220, Some("2.0.0"));
    let mut tls = TlsClient::connect_as(
        c.into_stream(),
        &server.cert_path(),
        Some(rogue.client("alice")),
    );
    let answer = tls.try_line("EHLO client.example");
    assert!(
        answer.is_err(),
        "a rogue CA's certificate was accepted: {answer:?}"
    );
}
