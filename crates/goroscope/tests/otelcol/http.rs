//! A minimal OTLP/HTTP client for the tests: one POST over a plain
//! `TcpStream` with HTTP/1.1, answered by the collector's Go `net/http`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::Collector;

impl Collector {
    /// POSTs `body` to `path` on the OTLP/HTTP port (`/v1/logs`,
    /// `/v1development/profiles`, ...) with plain HTTP/1.1 and `headers`
    /// (`Content-Type: application/x-protobuf` or `application/json` at
    /// least), and returns the status code and the response body (de-chunked).
    #[track_caller]
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
        let addr = self.http_addr();
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| {
                panic!("cannot connect to the collector's OTLP/HTTP port {addr}: {e}")
            });
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let headers: String = headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        // One write, so a small body arrives with the head: a server that refuses a request from
        // its head alone closes the connection with nothing of ours left unread (which would
        // make its kernel reset the connection).
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        stream
            .write_all(&request)
            .unwrap_or_else(|e| panic!("cannot send the request to {addr}: {e}"));
        let mut response = Vec::new();
        match stream.read_to_end(&mut response) {
            Ok(_) => {}
            // A server that answers before reading the whole body (a refusal) resets the
            // connection as it closes it: what it answered was read before the reset.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !response.is_empty() => {}
            Err(e) => panic!("cannot read the response from {addr}: {e}"),
        }
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP response from {addr}: {response:?}"));
        let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP status line from {addr}: {head:?}"));
        let body = &response[split + 4..];
        let body = if head.contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_vec()
        };
        (status, body)
    }
}

/// The data of an HTTP/1.1 chunked body.
#[track_caller]
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("a chunk without a size line: {body:?}"));
        let size = String::from_utf8_lossy(&body[..end]);
        let size = size.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .unwrap_or_else(|e| panic!("a chunk size {size:?} that is not hex: {e}"));
        if size == 0 {
            return out;
        }
        let data = end + 2;
        assert!(body.len() >= data + size + 2, "a chunk cut short");
        out.extend_from_slice(&body[data..data + size]);
        body = &body[data + size + 2..];
    }
}
