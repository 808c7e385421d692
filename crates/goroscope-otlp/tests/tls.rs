//! The exporter over TLS against the fake OTLP server, with certificate authorities made at
//! test time (rcgen): delivery over both protocols with `ca_file`, mutual TLS, a server
//! whose certificate the exporter does not trust (dropped, not retried), and TLS files that
//! stop the exporter from starting, with the file named.

mod common;
mod fake;

use std::sync::Arc;
use std::time::Duration;

use common::{config, metrics, start, wait_stats};
use fake::{free_addr, Fake, Kind, Pki, ServerTls};
use goroscope_otlp::{DropReason, ExportError, ExportStats, Exporter, Protocol};

/// A TLS fake for `kind` with a certificate from `pki`, asking for client certificates
/// from `client_ca` if given; and its `https://` URL.
fn tls_fake(kind: Kind, pki: &Pki, client_ca: Option<&Pki>) -> (Fake, String) {
    let (cert_pem, key_pem) = pki.issue("server");
    let tls = ServerTls {
        cert_pem,
        key_pem,
        client_ca_pem: client_ca.map(Pki::ca_pem),
    };
    let fake = Fake::start_on(kind, free_addr(), Some(tls));
    let path = match kind {
        Kind::Http => "/v1/metrics",
        Kind::Grpc => "",
    };
    let url = format!("https://{}{path}", fake.addr);
    (fake, url)
}

fn protocol(kind: Kind) -> Protocol {
    match kind {
        Kind::Http => Protocol::HttpProtobuf,
        Kind::Grpc => Protocol::Grpc,
    }
}

#[test]
fn https_with_the_configured_ca_delivers_over_both_protocols() {
    for kind in [Kind::Http, Kind::Grpc] {
        let pki = Pki::new("server-ca");
        let (fake, url) = tls_fake(kind, &pki, None);
        let mut config = config(protocol(kind), &url);
        config.tls.ca_file = Some(pki.ca_file());
        let (exporter, stats) = start(config);
        exporter.send(metrics("secure", 3));
        wait_stats(&stats, Duration::from_secs(10), "delivered over TLS", |s| {
            s.items_sent == 3
        });
        assert_eq!(fake.received().len(), 1, "{kind:?}");
    }
}

#[test]
fn mutual_tls_delivers_with_the_client_certificate_and_not_without() {
    for kind in [Kind::Http, Kind::Grpc] {
        let pki = Pki::new("mtls-server");
        let clients = Pki::new("mtls-clients");
        clients.issue("client");
        let (fake, url) = tls_fake(kind, &pki, Some(&clients));

        let mut config = config(protocol(kind), &url);
        config.tls.ca_file = Some(pki.ca_file());
        config.max_elapsed = Duration::from_secs(2);
        let (without, stats) = start(config.clone());
        without.send(metrics("anonymous", 2));
        let counts = wait_stats(&stats, Duration::from_secs(10), "dropped", |s| {
            s.dropped_total() == 2
        });
        assert_eq!(
            counts.items_sent, 0,
            "{kind:?}: delivered without a client certificate"
        );
        assert!(fake.received().is_empty());
        drop(without);

        config.tls.cert_file = Some(clients.path("client.pem"));
        config.tls.key_file = Some(clients.path("client-key.pem"));
        let (with, stats) = start(config);
        with.send(metrics("identified", 4));
        wait_stats(
            &stats,
            Duration::from_secs(10),
            "delivered with mTLS",
            |s| s.items_sent == 4,
        );
        assert_eq!(fake.received().len(), 1, "{kind:?}");
    }
}

#[test]
fn a_server_certificate_from_another_ca_is_dropped_not_retried() {
    for kind in [Kind::Http, Kind::Grpc] {
        let pki = Pki::new("real-ca");
        let other = Pki::new("other-ca");
        let (fake, url) = tls_fake(kind, &pki, None);
        let mut config = config(protocol(kind), &url);
        config.tls.ca_file = Some(other.ca_file());
        let (exporter, stats) = start(config);
        exporter.send(metrics("untrusted", 5));
        let counts = wait_stats(
            &stats,
            Duration::from_secs(5),
            "dropped not_retryable",
            |s| s.dropped(DropReason::NotRetryable) == 5,
        );
        assert_eq!(
            counts.requests_retried, 0,
            "{kind:?}: a certificate error was retried"
        );
        let error = counts.last_error.unwrap_or_default();
        assert!(error.contains("certificate"), "{kind:?}: {error}");
        assert!(fake.received().is_empty());
    }
}

#[test]
fn bad_tls_files_stop_the_start_and_name_the_file() {
    let pki = Pki::new("files");
    let (_, _) = pki.issue("client");
    let not_pem = pki.path("not.pem");
    std::fs::write(&not_pem, "this is not PEM\n").unwrap_or_else(|e| panic!("{e}"));
    let missing = pki.path("missing.pem");
    let base = config(Protocol::Grpc, "https://127.0.0.1:4317");
    let start = |config| Exporter::start(config, Arc::new(ExportStats::new()));

    let mut unreadable = base.clone();
    unreadable.tls.ca_file = Some(missing.clone());
    match start(unreadable) {
        Err(e @ ExportError::TlsFileUnreadable { .. }) => {
            assert!(
                e.to_string().contains(&missing.display().to_string()),
                "{e}"
            )
        }
        other => panic!("a missing CA file gave {other:?}"),
    }

    let mut garbage = base.clone();
    garbage.tls.ca_file = Some(not_pem.clone());
    match start(garbage) {
        Err(e @ ExportError::TlsFileNotPem { .. }) => {
            assert!(
                e.to_string().contains(&not_pem.display().to_string()),
                "{e}"
            )
        }
        other => panic!("a CA file that is not PEM gave {other:?}"),
    }

    let mut half = base.clone();
    half.tls.ca_file = Some(pki.ca_file());
    half.tls.cert_file = Some(pki.path("client.pem"));
    match start(half) {
        Err(e @ ExportError::TlsHalfIdentity { .. }) => {
            assert!(e.to_string().contains("client.pem"), "{e}")
        }
        other => panic!("a certificate without a key gave {other:?}"),
    }

    let mut bad_key = base.clone();
    bad_key.tls.ca_file = Some(pki.ca_file());
    bad_key.tls.cert_file = Some(pki.path("client.pem"));
    bad_key.tls.key_file = Some(not_pem.clone());
    match start(bad_key) {
        Err(e @ ExportError::TlsFileNotPem { .. }) => {
            assert!(
                e.to_string().contains("not.pem") && e.to_string().contains("private key"),
                "{e}"
            )
        }
        other => panic!("a key file that is not PEM gave {other:?}"),
    }

    let mut clear = base;
    clear.endpoints[0] = Some(
        goroscope_otlp::Endpoint::parse("http://192.0.2.1:4317").unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(matches!(start(clear), Err(ExportError::Plaintext { .. })));
}
