//! TLS for the Arvados test stack: the self-signed certificate `start` writes to the run
//! directory (valid for 127.0.0.1, localhost and the CN 0.0.0.0 clients of the original test
//! server expect), the rustls server configuration the API server serves with, and the client
//! configurations cibox's own requests to an API server use (trusting that certificate, or
//! trusting anything when `ARVADOS_API_HOST_INSECURE` says so).

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// Certificate file name in the run directory (the name the original test server used).
pub const CERT_FILE: &str = "self-signed.pem";
/// Private key file name in the run directory.
pub const KEY_FILE: &str = "self-signed.key";

/// Why a certificate could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating the key or certificate failed.
    #[error("cannot generate the TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing or reading a file failed.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        source: io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong with it.
        what: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes a fresh self-signed certificate and key and writes them (PEM) to `cert` and `key`
/// (the key readable by the owner only).
pub fn write_self_signed(cert: &Path, key: &Path) -> Result<(), TlsError> {
    let mut params = rcgen::CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        "0.0.0.0".to_string(),
    ])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "0.0.0.0");
    let key_pair = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key_pair)?;
    let file_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError::File { path, source }
    };
    crate::process::write_atomic(key, key_pair.serialize_pem().as_bytes(), 0o600)
        .map_err(file_error(key))?;
    crate::process::write_atomic(cert, certificate.pem().as_bytes(), 0o644)
        .map_err(file_error(cert))?;
    Ok(())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            path: shown.clone(),
            what: format!("not a PEM certificate file ({e})"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: shown,
            what: "no certificate in it".into(),
        });
    }
    Ok(certs)
}

/// The server configuration for the certificate and key files `cert` and `key`.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let certs = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
        path: key.display().to_string(),
        what: format!("not a PEM private key ({e})"),
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // No TLS 1.3 session tickets: nothing here resumes sessions, and a ticket is a message the
    // server sends unasked right after the handshake. Clients that read and write one TLS
    // socket from two threads (the Arvados SDK's websocket client: CPython's ssl with
    // websockets' threaded client) race it against their first request and now and then lose
    // the connection (a handshake answer that never comes, an SSL "internal error").
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// A client configuration that trusts the certificates in `cert` (the run directory's
/// self-signed certificate) and nothing else.
pub fn client_config_trusting(cert: &Path) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(cert)? {
        roots.add(c)?;
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client configuration that accepts any server certificate, for `ARVADOS_API_HOST_INSECURE`
/// (signatures are still checked, so the handshake itself stays sound).
pub fn client_config_insecure() -> Result<ClientConfig, TlsError> {
    let verifier = AnyCertificate(provider());
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_loads_on_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join(CERT_FILE), dir.path().join(KEY_FILE));
        write_self_signed(&cert, &key).unwrap();
        server_config(&cert, &key).unwrap();
        client_config_trusting(&cert).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_file_that_is_not_pem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("bad.pem");
        std::fs::write(&cert, "hello").unwrap();
        let err = client_config_trusting(&cert).unwrap_err().to_string();
        assert!(err.contains("bad.pem"), "{err}");
    }
}
