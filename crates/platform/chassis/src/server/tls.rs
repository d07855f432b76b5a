//! TLS for a listener (issue 13, item 6): rustls through tokio-rustls, offering HTTP/2 and
//! HTTP/1.1 by ALPN, under the same accept loop as plain connections, so every timeout and the
//! connection cap hold for TLS too: the handshake runs on the header clock (a handshake that
//! never completes is closed like a slow head), then the connection is idle until its first
//! request.
//!
//! The crypto provider is named here (ring, which the chassis already uses for its tokens)
//! rather than taken from the process default: with more than one provider compiled in (aws-lc
//! through a client, ring through others), rustls has no default and would panic
//! (CRATES.md, pitfalls).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// Where a listener's certificate and key are (`[tls]` in the configuration): PEM files, the
/// certificate chain leaf first.
#[derive(Debug, Clone, Deserialize)]
pub struct TlsSettings {
    /// The certificate chain (PEM).
    pub cert_path: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM item of the kind needed.
    #[error("{path}: {what}")]
    File { path: PathBuf, what: String },
    /// rustls refused the certificate or key.
    #[error("the certificate or key is not usable: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The request extension marking a request that arrived over TLS on this process's listener
/// (the storefront's cue to make its cookie `Secure`). Absent on plain connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivedOverTls;

impl TlsSettings {
    /// The acceptor for these files: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let certs = read_pem(&self.cert_path, |bytes| {
            CertificateDer::pem_slice_iter(bytes).collect::<Result<Vec<_>, _>>()
        })?;
        if certs.is_empty() {
            return Err(file_error(&self.cert_path, "no certificate in it"));
        }
        let key = read_pem(&self.key_path, PrivateKeyDer::from_pem_slice)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

fn file_error(path: &Path, what: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        what: what.into(),
    }
}

fn read_pem<T, E: std::fmt::Display>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<T, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e.to_string()))?;
    parse(&bytes).map_err(|e| file_error(path, e.to_string()))
}
