//! The TLS client settings of `https://` endpoints, read from the configured PEM files
//! when the exporter starts (so a bad file fails the start, naming the file, instead of
//! every request): the certificate authorities to trust (`ca_file`, else the system's) and
//! the client identity for mutual TLS. rustls with the ring provider.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::{Endpoint, ExporterConfig, Signal};
use crate::error::ExportError;

/// Checks the configuration's TLS settings and builds the client configuration every
/// `https://` endpoint uses. The files are checked even when no endpoint uses TLS, so a
/// mistake shows at once rather than when an endpoint changes; the system's authorities are
/// loaded only when an endpoint needs them.
pub(crate) fn client_config(config: &ExporterConfig) -> Result<Arc<ClientConfig>, ExportError> {
    let tls = &config.tls;
    for endpoint in Signal::ALL.iter().filter_map(|&s| config.endpoint(s)) {
        if !endpoint.is_tls() && !endpoint.is_loopback() && !tls.insecure {
            return Err(ExportError::Plaintext {
                endpoint: endpoint.to_string(),
            });
        }
    }
    let ca = tls.ca_file.as_deref().map(read_certificates).transpose()?;
    let identity = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some((cert, read_certificates(cert)?, key, read_key(key)?)),
        (Some(path), None) | (None, Some(path)) => {
            return Err(ExportError::TlsHalfIdentity { path: path.clone() })
        }
        (None, None) => None,
    };
    let first_tls = Signal::ALL
        .iter()
        .filter_map(|&s| config.endpoint(s))
        .find(|e| e.is_tls());
    let mut roots = RootCertStore::empty();
    match (ca, &tls.ca_file, first_tls) {
        (Some(certificates), Some(path), _) => {
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|source| ExportError::TlsBadCa {
                        path: path.clone(),
                        source,
                    })?;
            }
        }
        (_, _, Some(endpoint)) => system_roots(&mut roots, endpoint)?,
        // Plaintext only: the configuration is never used.
        _ => {}
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|source| ExportError::TlsBadCa {
                path: tls.ca_file.clone().unwrap_or_default(),
                source,
            })?
            .with_root_certificates(roots);
    let client =
        match identity {
            Some((cert, chain, key_path, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| ExportError::TlsBadIdentity {
                    cert: cert.clone(),
                    key: key_path.clone(),
                    source,
                })?,
            None => builder.with_no_client_auth(),
        };
    Ok(Arc::new(client))
}

/// The system's certificate authorities.
fn system_roots(roots: &mut RootCertStore, endpoint: &Endpoint) -> Result<(), ExportError> {
    let loaded = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let detail = match loaded.errors.first() {
            Some(e) => e.to_string(),
            None => "none found".to_owned(),
        };
        return Err(ExportError::NoSystemRoots {
            endpoint: endpoint.to_string(),
            detail,
        });
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, ExportError> {
    std::fs::read(path).map_err(|source| ExportError::TlsFileUnreadable {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ExportError> {
    let pem = read(path)?;
    let certificates: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certificates.is_empty() {
        return Err(ExportError::TlsFileNotPem {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certificates)
}

/// The private key in a PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ExportError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| ExportError::TlsFileNotPem {
        path: path.to_owned(),
        what: "private key",
    })
}
