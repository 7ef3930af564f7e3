//! A development PKI made with rcgen (`eligd certs`, `eligd demo`, tests):
//! a CA, a server certificate and one client certificate per role, so
//! nobody prepares certificates by hand to try the server.
//!
//! Keys are ECDSA P-256. Certificates are valid from January 1st of last year
//! to the end of the year ten years on. Production certificates come from the
//! system's own CA; they only need the role URI of [`crate::core::role`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use chrono::Datelike;
use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use sha2::Digest;

use crate::core::role::Role;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A certificate and its private key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A CA and the certificates it issued.
pub struct DevPki {
    pub ca: Pem,
    pub server: Pem,
    pub central: Pem,
    pub institution: Pem,
    pub operator: Pem,
    /// The code carried by `institution`.
    pub institution_code: String,
    ca_cert: Certificate,
    ca_key: KeyPair,
}

impl std::fmt::Debug for DevPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevPki").field("institution_code", &self.institution_code).finish_non_exhaustive()
    }
}

fn validity(params: &mut CertificateParams) {
    let year = chrono::Utc::now().year();
    params.not_before = date_time_ymd(year - 1, 1, 1);
    params.not_after = date_time_ymd(year + 10, 12, 31);
}

impl DevPki {
    /// A new CA with server and client certificates. `server_names` are DNS
    /// names of the server certificate; 127.0.0.1 and ::1 are always added.
    pub fn generate(institution_code: &str, server_names: &[&str]) -> Result<DevPki, CertError> {
        let ca_key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        validity(&mut params);
        params.distinguished_name = rcgen::DistinguishedName::new();
        // A distinct name per PKI, so a certificate of another dev PKI is
        // reported as from an unknown CA rather than as a bad signature.
        let tag = hex::encode(&sha2::Sha256::digest(ca_key.public_key_raw())[..4]);
        params.distinguished_name.push(DnType::CommonName, format!("elig development CA {tag}"));
        params.distinguished_name.push(DnType::OrganizationName, "elig development");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = params.self_signed(&ca_key)?;
        let ca = Pem { cert_pem: ca_cert.pem(), key_pem: ca_key.serialize_pem() };

        let mut pki = DevPki {
            ca,
            server: Pem { cert_pem: String::new(), key_pem: String::new() },
            central: Pem { cert_pem: String::new(), key_pem: String::new() },
            institution: Pem { cert_pem: String::new(), key_pem: String::new() },
            operator: Pem { cert_pem: String::new(), key_pem: String::new() },
            institution_code: institution_code.to_string(),
            ca_cert,
            ca_key,
        };
        pki.server = pki.issue_server(server_names)?;
        pki.central = issue_client(&pki, &[Role::Central], "elig central system")?;
        pki.institution =
            issue_client(&pki, &[Role::Institution(institution_code.to_string())], &format!("institution {institution_code}"))?;
        pki.operator = issue_client(&pki, &[Role::Operator], "elig operator")?;
        Ok(pki)
    }

    fn issue_server(&self, names: &[&str]) -> Result<Pem, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        validity(&mut params);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "eligd");
        for n in names {
            params.subject_alt_names.push(SanType::DnsName((*n).try_into()?));
        }
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key)?;
        Ok(Pem { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Write the PKI into `dir` (created if needed): `ca.pem`, `ca.key`, and
    /// `<name>.pem` / `<name>.key` for server, central, institution and
    /// operator. Returns the files written. Keys are mode 0600.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, CertError> {
        std::fs::create_dir_all(dir).map_err(|source| CertError::Io { path: dir.to_path_buf(), source })?;
        let mut written = Vec::new();
        for (name, pem) in [
            ("ca", &self.ca),
            ("server", &self.server),
            ("central", &self.central),
            ("institution", &self.institution),
            ("operator", &self.operator),
        ] {
            let cert = dir.join(format!("{name}.pem"));
            write_file(&cert, &pem.cert_pem, false)?;
            let key = dir.join(format!("{name}.key"));
            write_file(&key, &pem.key_pem, true)?;
            written.push(cert);
            written.push(key);
        }
        Ok(written)
    }
}

/// A client certificate carrying `roles` (normally exactly one; tests use
/// several to check the refusal), signed by the PKI's CA.
pub fn issue_client(pki: &DevPki, roles: &[Role], common_name: &str) -> Result<Pem, CertError> {
    issue_client_with_usages(pki, roles, common_name, &[ExtendedKeyUsagePurpose::ClientAuth])
}

/// A client certificate with the given extended key usages (none: no
/// extension at all), for tests of the `clientAuth` requirement.
pub fn issue_client_with_usages(
    pki: &DevPki,
    roles: &[Role],
    common_name: &str,
    usages: &[ExtendedKeyUsagePurpose],
) -> Result<Pem, CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    validity(&mut params);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    for role in roles {
        params.subject_alt_names.push(SanType::URI(role.uri().try_into()?));
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages.to_vec();
    let cert = params.signed_by(&key, &pki.ca_cert, &pki.ca_key)?;
    Ok(Pem { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

fn write_file(path: &Path, text: &str, private: bool) -> Result<(), CertError> {
    let io = |source| CertError::Io { path: path.to_path_buf(), source };
    std::fs::write(path, text).map_err(io)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_file_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::generate("3410712362", &["localhost"]).unwrap();
        let files = pki.write(dir.path()).unwrap();
        assert_eq!(files.len(), 10);
        let key = std::fs::read_to_string(dir.path().join("operator.key")).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("ca.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
