//! The configurations of both sides, with one crypto provider
//! ([`crypto_provider`]): the server's from a PEM chain and key, the load
//! generator's (`wss://`) checking the server's certificate against the
//! system's roots or, with `--insecure`, not at all (self-signed test
//! certificates): the handshake's signatures are still verified, only the
//! chain is not.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// TLS for a client connection: the client configuration and the name the
/// server's certificate must be for.
pub type TlsTarget = (Arc<ClientConfig>, ServerName<'static>);

/// The cryptography of every TLS connection, the server's and the load
/// generator's: rustls's *ring* provider (TLS 1.3 and 1.2, X25519, P-256,
/// P-384, AES-GCM and ChaCha20-Poly1305).
///
/// rustls 0.23.48 deprecates it because it offers no post-quantum key
/// exchange; its replacement, aws-lc-rs, is a C library whose build adds
/// minutes to every profile built (five here, each of CI's four builds),
/// and changes the crypto under the measured TLS figures. We keep *ring*
/// deliberately, in this one place, until rustls drops it or post-quantum
/// key exchange is asked for; a library user's build shows no warning.
#[allow(deprecated)]
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A server configuration from a PEM certificate chain and key; ALPN
/// `http/1.1` (RFC 7301; a WebSocket handshake is HTTP/1.1, RFC 6455 §4.1).
/// Errors name the file.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(crypto_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The configuration for connections to `name`.
pub fn client_config(name: &str, insecure: bool) -> Result<TlsTarget, String> {
    let provider = Arc::new(crypto_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            return Err("wss://: no system root certificates found (--insecure skips the check)".into());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    // A WebSocket handshake is HTTP/1.1 (RFC 6455 §4.1).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(name.to_owned()).map_err(|e| format!("wss://{name}: {e}"))?;
    Ok((Arc::new(config), name))
}

/// `--insecure`: any certificate chain is taken.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
