//! The server's rustls configuration: TLS 1.3 only, the *ring* provider,
//! client certificates required and verified against our CA, ALPN
//! [`elig_wire::ALPN`], and no 0-RTT (early data is replayable). PEM
//! loading and the client side are the client crate's (`elig_client::tls`).

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

pub use elig_client::tls::{client_config, parse_certs, parse_key, provider, quic_client, read, roots, Identity, TlsError};
use elig_wire::ALPN;

/// The server side: TLS 1.3, client certificate required and verified
/// against `roots`, ALPN `elig/1`, `max_early_data_size = 0`.
pub fn server_config(roots: RootCertStore, identity: Identity) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_early_data_size = 0;
    config.send_half_rtt_data = false;
    Ok(config)
}

/// quinn's server crypto from a rustls configuration.
pub fn quic_server(config: rustls::ServerConfig) -> Result<Arc<quinn::crypto::rustls::QuicServerConfig>, TlsError> {
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(config).map_err(|e| TlsError::Quic(e.to_string()))?;
    Ok(Arc::new(quic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::certs::DevPki;

    #[test]
    fn configs_are_tls13_only_without_early_data() {
        let pki = DevPki::generate("3410712362", &["localhost"]).unwrap();
        let id = Identity::from_pem(pki.server.cert_pem.as_bytes(), pki.server.key_pem.as_bytes(), "server").unwrap();
        let server = server_config(roots(pki.ca.cert_pem.as_bytes(), "ca").unwrap(), id).unwrap();
        assert_eq!(server.max_early_data_size, 0);
        assert_eq!(server.alpn_protocols, vec![b"elig/1".to_vec()]);
        quic_server(server).unwrap();
        let client = client_config(roots(pki.ca.cert_pem.as_bytes(), "ca").unwrap(), None).unwrap();
        assert!(!client.enable_early_data);
        quic_client(client).unwrap();
    }

    #[test]
    fn a_tls12_client_is_refused() {
        let pki = DevPki::generate("3410712362", &["localhost"]).unwrap();
        let id = Identity::from_pem(pki.server.cert_pem.as_bytes(), pki.server.key_pem.as_bytes(), "server").unwrap();
        let server = server_config(roots(pki.ca.cert_pem.as_bytes(), "ca").unwrap(), id).unwrap();
        let server = std::sync::Arc::new(server);
        // A ClientHello offering `versions`, handed to the server in memory.
        let hello = |versions: &[&'static rustls::SupportedProtocolVersion]| {
            let client = rustls::ClientConfig::builder_with_protocol_versions(versions)
                .with_root_certificates(roots(pki.ca.cert_pem.as_bytes(), "ca").unwrap())
                .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut c = rustls::ClientConnection::new(std::sync::Arc::new(client), name).unwrap();
            let mut s = rustls::ServerConnection::new(server.clone()).unwrap();
            let mut bytes = Vec::new();
            c.write_tls(&mut bytes).unwrap();
            s.read_tls(&mut bytes.as_slice()).unwrap();
            s.process_new_packets().map(|_| ())
        };
        hello(&[&rustls::version::TLS13]).expect("a TLS 1.3 hello is taken");
        let err = hello(&[&rustls::version::TLS12]).expect_err("the server speaks TLS 1.3 only");
        assert!(matches!(err, rustls::Error::PeerIncompatible(_)), "{err}");
    }

    #[test]
    fn pem_errors_name_the_file() {
        let e = parse_certs(b"hello", "x.pem").unwrap_err();
        assert_eq!(e.to_string(), "x.pem: no certificate found (expected a PEM 'CERTIFICATE' block)");
        let e = parse_key(b"", "x.key").unwrap_err();
        assert!(e.to_string().starts_with("x.key: no private key"), "{e}");
    }
}
