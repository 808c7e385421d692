//! Why an exporter cannot start or take a new configuration. Failures while sending are not
//! errors of the API: they are counted in [`crate::ExportStats`].

use std::path::PathBuf;

/// Why an exporter cannot start or take a new configuration.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A TLS file cannot be read.
    #[error("cannot read the TLS file {}: {source}; check exporters.otlp.tls and the file's permissions", path.display())]
    TlsFileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A TLS file holds no PEM item of the kind it should.
    #[error("the TLS file {} holds no PEM {what}; give a PEM file (-----BEGIN ...-----)", path.display())]
    TlsFileNotPem {
        /// The file.
        path: PathBuf,
        /// What it should hold: "certificate" or "private key".
        what: &'static str,
    },
    /// A certificate authority file's certificate is not one rustls accepts.
    #[error("the certificate authority file {} holds a certificate that cannot be used: {source}", path.display())]
    TlsBadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error("mutual TLS needs both tls.cert_file and tls.key_file; only {} is set", path.display())]
    TlsHalfIdentity {
        /// The one that is set.
        path: PathBuf,
    },
    /// The client certificate and key do not make an identity.
    #[error("the client certificate {} and key {} cannot be used together: {source}", cert.display(), key.display())]
    TlsBadIdentity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// An `https://` endpoint, no `ca_file`, and no system certificate authorities.
    #[error("{endpoint} uses TLS but this system has no certificate authorities ({detail}); set exporters.otlp.tls.ca_file")]
    NoSystemRoots {
        /// The endpoint.
        endpoint: String,
        /// What loading them said.
        detail: String,
    },
    /// A plaintext endpoint off this host without `insecure`.
    #[error("{endpoint} would send telemetry over the network in clear text; use https://, or set exporters.otlp.tls.insecure: true to allow it")]
    Plaintext {
        /// The endpoint.
        endpoint: String,
    },
    /// A header that cannot be sent.
    #[error("the header `{name}` has a name or value that cannot be sent in HTTP (names are letters, digits and -; values visible ASCII); fix exporters.otlp.headers")]
    Header {
        /// Its name.
        name: String,
    },
    /// The sending thread cannot be started.
    #[error("cannot start the OTLP sending thread: {source}")]
    Thread {
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
