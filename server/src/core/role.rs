//! Roles, read from the client certificate.
//!
//! A client certificate carries its role as exactly one URI in its
//! subjectAltName extension:
//!
//! | URI | role |
//! |---|---|
//! | `urn:elig:role:central` | the central system: queries on behalf of any institution |
//! | `urn:elig:role:institution:<code>` | one institution (10-digit code, check digit valid): queries only as itself |
//! | `urn:elig:role:operator` | operator: status, usage (later swap and delta) |
//!
//! Other SAN entries (DNS names, other URIs) are ignored. A certificate with
//! no `urn:elig:role:` URI, or with more than one, has no role and its
//! connection is closed. So is one without the `clientAuth` extended key
//! usage: the TLS verifier refuses a certificate whose extension lacks it,
//! but takes one with no extension at all as good for any use.

use std::fmt;

use elig_engine::ids;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Prefix of every role URI.
pub const ROLE_URI_PREFIX: &str = "urn:elig:role:";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    Central,
    /// An institution, with its canonical 10-digit code.
    Institution(String),
    Operator,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleError {
    #[error("the client presented no certificate")]
    NoCertificate,
    #[error("the client certificate does not parse: {0}")]
    Parse(String),
    #[error(
        "the client certificate is not for TLS client authentication: {found}; client certificates need the extended key usage clientAuth (1.3.6.1.5.5.7.3.2)"
    )]
    NoClientAuth { found: &'static str },
    #[error("the client certificate carries no role (expected one subjectAltName URI starting with '{ROLE_URI_PREFIX}')")]
    NoRole,
    #[error("the client certificate carries several roles: {0}")]
    SeveralRoles(String),
    #[error(
        "unknown role URI '{0}' (expected {ROLE_URI_PREFIX}central, {ROLE_URI_PREFIX}operator or {ROLE_URI_PREFIX}institution:<code>)"
    )]
    Unknown(String),
    #[error("role URI '{uri}': institution code {reason}")]
    Institution { uri: String, reason: String },
}

impl Role {
    /// `central`, `institution` or `operator`.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Central => "central",
            Role::Institution(_) => "institution",
            Role::Operator => "operator",
        }
    }

    /// The institution code an institution certificate carries.
    pub fn institution(&self) -> Option<&str> {
        match self {
            Role::Institution(code) => Some(code),
            _ => None,
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Role::Operator)
    }

    /// The SAN URI that carries this role.
    pub fn uri(&self) -> String {
        match self {
            Role::Central => format!("{ROLE_URI_PREFIX}central"),
            Role::Institution(code) => format!("{ROLE_URI_PREFIX}institution:{code}"),
            Role::Operator => format!("{ROLE_URI_PREFIX}operator"),
        }
    }

    /// Parse a role URI (`urn:elig:role:...`).
    pub fn from_uri(uri: &str) -> Result<Role, RoleError> {
        let rest = uri.strip_prefix(ROLE_URI_PREFIX).ok_or_else(|| RoleError::Unknown(uri.to_string()))?;
        match rest {
            "central" => Ok(Role::Central),
            "operator" => Ok(Role::Operator),
            _ => {
                let code = rest.strip_prefix("institution:").ok_or_else(|| RoleError::Unknown(uri.to_string()))?;
                let canonical = ids::institution_code(code)
                    .map_err(|e| RoleError::Institution { uri: uri.to_string(), reason: format!("'{}' {}", e.value, e.reason) })?;
                if canonical != code {
                    return Err(RoleError::Institution {
                        uri: uri.to_string(),
                        reason: format!("'{code}' must be written as exactly 10 ASCII digits"),
                    });
                }
                Ok(Role::Institution(canonical))
            }
        }
    }

    /// The role of a DER-encoded client certificate.
    pub fn from_certificate(der: &[u8]) -> Result<Role, RoleError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| RoleError::Parse(e.to_string()))?;
        match cert.extended_key_usage().map_err(|e| RoleError::Parse(e.to_string()))? {
            None => return Err(RoleError::NoClientAuth { found: "it has no extended key usage extension" }),
            Some(eku) if !eku.value.client_auth => {
                return Err(RoleError::NoClientAuth { found: "its extended key usage extension does not list clientAuth" })
            }
            Some(_) => {}
        }
        let san = cert.subject_alternative_name().map_err(|e| RoleError::Parse(e.to_string()))?;
        let mut uris = Vec::new();
        if let Some(san) = san {
            for name in &san.value.general_names {
                if let GeneralName::URI(uri) = name {
                    if uri.starts_with(ROLE_URI_PREFIX) {
                        uris.push(*uri);
                    }
                }
            }
        }
        match uris.as_slice() {
            [] => Err(RoleError::NoRole),
            [one] => Role::from_uri(one),
            many => Err(RoleError::SeveralRoles(many.join(", "))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Institution(code) => write!(f, "institution {code}"),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::certs;

    #[test]
    fn role_uris_parse_and_round_trip() {
        for role in [Role::Central, Role::Operator, Role::Institution("3410712362".into())] {
            assert_eq!(Role::from_uri(&role.uri()).unwrap(), role);
        }
        assert!(matches!(Role::from_uri("urn:elig:role:admin"), Err(RoleError::Unknown(_))));
        let e = Role::from_uri("urn:elig:role:institution:3410712363").unwrap_err();
        assert!(e.to_string().contains("check digit (expected 2)"), "{e}");
        let e = Role::from_uri("urn:elig:role:institution:３４１０７１２３６２").unwrap_err();
        assert!(e.to_string().contains("exactly 10 ASCII digits"), "{e}");
    }

    #[test]
    fn roles_come_from_generated_certificates() {
        let pki = certs::DevPki::generate("3410712362", &["localhost"]).unwrap();
        let der = |pem: &str| crate::quic::tls::parse_certs(pem.as_bytes(), "test").unwrap().remove(0);
        assert_eq!(Role::from_certificate(&der(&pki.central.cert_pem)).unwrap(), Role::Central);
        assert_eq!(Role::from_certificate(&der(&pki.operator.cert_pem)).unwrap(), Role::Operator);
        assert_eq!(Role::from_certificate(&der(&pki.institution.cert_pem)).unwrap(), Role::Institution("3410712362".into()));
        assert!(matches!(Role::from_certificate(&der(&pki.server.cert_pem)), Err(RoleError::NoClientAuth { .. })));
        let nobody = certs::issue_client(&pki, &[], "nobody").unwrap();
        assert_eq!(Role::from_certificate(&der(&nobody.cert_pem)).unwrap_err(), RoleError::NoRole);
        assert!(matches!(Role::from_certificate(b"junk"), Err(RoleError::Parse(_))));
    }

    #[test]
    fn a_certificate_without_client_auth_has_no_role() {
        use rcgen::ExtendedKeyUsagePurpose as Eku;
        let pki = certs::DevPki::generate("3410712362", &["localhost"]).unwrap();
        let role_of = |usages: &[Eku]| {
            let pem = certs::issue_client_with_usages(&pki, &[Role::Central], "central", usages).unwrap();
            Role::from_certificate(&crate::quic::tls::parse_certs(pem.cert_pem.as_bytes(), "test").unwrap().remove(0))
        };
        assert_eq!(role_of(&[Eku::ClientAuth]).unwrap(), Role::Central);
        assert_eq!(role_of(&[Eku::ServerAuth, Eku::ClientAuth]).unwrap(), Role::Central);
        let e = role_of(&[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the client certificate is not for TLS client authentication: it has no extended key usage extension; client certificates need the extended key usage clientAuth (1.3.6.1.5.5.7.3.2)"
        );
        assert_eq!(
            role_of(&[Eku::ServerAuth]).unwrap_err(),
            RoleError::NoClientAuth { found: "its extended key usage extension does not list clientAuth" }
        );
    }

    #[test]
    fn several_role_uris_are_refused() {
        let pki = certs::DevPki::generate("3410712362", &["localhost"]).unwrap();
        let two = certs::issue_client(&pki, &[Role::Central, Role::Operator], "two roles").unwrap();
        let der = crate::quic::tls::parse_certs(two.cert_pem.as_bytes(), "test").unwrap().remove(0);
        assert!(matches!(Role::from_certificate(&der), Err(RoleError::SeveralRoles(_))));
    }
}
