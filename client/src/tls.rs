//! TLS for both ends: PEM certificates and keys, trust anchors, and the
//! client's rustls configuration (TLS 1.3 only, the *ring* provider, ALPN
//! [`elig_wire::ALPN`], no 0-RTT: early data is replayable). The server's
//! configuration (`elig_server::quic::tls`) builds on these.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use elig_wire::ALPN;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{what}: not valid PEM: {message}")]
    Pem { what: String, message: String },
    #[error("{what}: no certificate found (expected a PEM 'CERTIFICATE' block)")]
    NoCertificate { what: String },
    #[error("{what}: no private key found (expected a PEM PKCS#8, RSA or EC private key)")]
    NoKey { what: String },
    #[error("CA certificate {what} is not usable as a trust anchor: {message}")]
    BadCa { what: String, message: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    #[error("QUIC needs a TLS 1.3 configuration with AES-128-GCM: {0}")]
    Quic(String),
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl Identity {
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], what: &str) -> Result<Identity, TlsError> {
        Ok(Identity { chain: parse_certs(cert_pem, what)?, key: parse_key(key_pem, what)? })
    }

    /// Read a PEM certificate chain and a PEM private key.
    pub fn load(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let chain = parse_certs(&read(cert)?, &cert.display().to_string())?;
        let key = parse_key(&read(key)?, &key.display().to_string())?;
        Ok(Identity { chain, key })
    }
}

pub fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io { path: path.to_path_buf(), source })
}

/// Every certificate of a PEM text.
pub fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { what: what.to_string(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what: what.to_string() });
    }
    Ok(certs)
}

/// The first private key of a PEM text.
pub fn parse_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| TlsError::Pem { what: what.to_string(), message: e.to_string() })?
        .ok_or_else(|| TlsError::NoKey { what: what.to_string() })
}

/// Trust anchors from PEM CA certificates.
pub fn roots(ca_pem: &[u8], what: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(ca_pem, what)? {
        roots.add(cert).map_err(|e| TlsError::BadCa { what: what.to_string(), message: e.to_string() })?;
    }
    Ok(roots)
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client side: TLS 1.3, the server verified against `roots`, our
/// certificate if given (without one the server refuses the handshake),
/// ALPN `elig/1`, no early data.
pub fn client_config(roots: RootCertStore, identity: Option<Identity>) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => builder.with_client_auth_cert(id.chain, id.key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.enable_early_data = false;
    Ok(config)
}

/// quinn's client crypto from a rustls configuration.
pub fn quic_client(config: rustls::ClientConfig) -> Result<Arc<quinn::crypto::rustls::QuicClientConfig>, TlsError> {
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(config).map_err(|e| TlsError::Quic(e.to_string()))?;
    Ok(Arc::new(quic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_errors_name_the_file() {
        let e = parse_certs(b"hello", "x.pem").unwrap_err();
        assert_eq!(e.to_string(), "x.pem: no certificate found (expected a PEM 'CERTIFICATE' block)");
        let e = parse_key(b"", "x.key").unwrap_err();
        assert!(e.to_string().starts_with("x.key: no private key"), "{e}");
        assert!(matches!(read(Path::new("/nonexistent/ca.pem")), Err(TlsError::Io { .. })));
    }

    #[test]
    fn the_client_config_is_tls13_without_early_data() {
        let config = client_config(RootCertStore::empty(), None).unwrap();
        assert!(!config.enable_early_data);
        assert_eq!(config.alpn_protocols, vec![b"elig/1".to_vec()]);
        quic_client(config).unwrap();
    }
}
