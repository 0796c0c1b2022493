//! Certificates made at run time (rcgen) for the TLS tests: an authority
//! and a certificate for 127.0.0.1 it signed.

use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};

/// An authority and a server certificate for 127.0.0.1 it signed, as PEM
/// files `{name}-ca.pem`, `{name}-cert.pem`, `{name}-key.pem` in `dir`.
pub struct TestCerts {
    /// The authority, for a rustls client's roots.
    pub ca_der: CertificateDer<'static>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make(dir: &Path, name: &str) -> TestCerts {
    std::fs::create_dir_all(dir).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Names of their own: OpenSSL takes a certificate whose issuer is its
    // subject for self-signed (rcgen names both alike by default).
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "wsreactor test authority");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let [ca_path, cert_path, key_path] = ["ca", "cert", "key"].map(|k| dir.join(format!("{name}-{k}.pem")));
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    TestCerts {
        ca_der: ca.der().clone(),
        ca: ca_path,
        cert: cert_path,
        key: key_path,
    }
}
