//! A bounded request load: a few client threads doing real requests against a daemon's API in a
//! loop, half over one keep-alive connection each and half over a new connection per request,
//! until stopped. Failed requests are counted and the first few kept, never panicked on in a
//! client thread.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// One request of a daemon's load.
#[derive(Debug, Clone)]
pub struct Request {
    /// Where to send it.
    pub address: SocketAddr,
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path with its query.
    pub path: String,
    /// The body of a POST (JSON).
    pub body: String,
}

impl Request {
    /// A GET of `path`.
    pub fn get(address: SocketAddr, path: &str) -> Request {
        Request {
            address,
            method: "GET",
            path: path.into(),
            body: String::new(),
        }
    }

    /// A POST of a JSON `body` to `path`.
    pub fn post(address: SocketAddr, path: &str, body: &str) -> Request {
        Request {
            address,
            method: "POST",
            path: path.into(),
            body: body.into(),
        }
    }
}

/// A client connection: reused while the server keeps it open, when `keep_alive`.
struct Client {
    keep_alive: bool,
    connection: Option<(SocketAddr, BufReader<TcpStream>)>,
}

impl Client {
    /// Sends `request`, reads the whole response; Ok(status).
    fn send(&mut self, request: &Request) -> Result<u16, String> {
        let reusable = self
            .connection
            .as_ref()
            .is_some_and(|(address, _)| *address == request.address);
        if !reusable {
            let stream = TcpStream::connect_timeout(&request.address, Duration::from_secs(5))
                .map_err(|e| format!("connect {}: {e}", request.address))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            self.connection = Some((request.address, BufReader::new(stream)));
        }
        let Some((_, reader)) = self.connection.as_mut() else {
            return Err("no connection".into());
        };
        let result = exchange(reader, request, self.keep_alive);
        if !self.keep_alive || !matches!(result, Ok((_, true))) {
            self.connection = None;
        }
        result.map(|(status, _)| status)
    }
}

/// One request/response on `reader`'s stream; Ok((status, the connection may be reused)).
fn exchange(
    reader: &mut BufReader<TcpStream>,
    request: &Request,
    keep_alive: bool,
) -> Result<(u16, bool), String> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: {connection}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        request.method,
        request.path,
        request.address,
        request.body.len()
    );
    let stream = reader.get_mut();
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(request.body.as_bytes()))
        .map_err(|e| format!("sending: {e}"))?;
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("reading the status line: {e}"))?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    let mut reusable = keep_alive;
    loop {
        line.clear();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("reading headers: {e}"))?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => length = value.parse::<u64>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => reusable &= !value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut sink = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader
                .read_line(&mut line)
                .map_err(|e| format!("reading a chunk size: {e}"))?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("bad chunk size {line:?}"))?;
            // The chunk and its CRLF (the last, empty chunk is followed by a CRLF too).
            reader
                .by_ref()
                .take(size + 2)
                .read_to_end(&mut sink)
                .map_err(|e| format!("reading a chunk: {e}"))?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(length) = length {
        reader
            .by_ref()
            .take(length)
            .read_to_end(&mut sink)
            .map_err(|e| format!("reading the body: {e}"))?;
    } else {
        reader
            .read_to_end(&mut sink)
            .map_err(|e| format!("reading the body: {e}"))?;
        reusable = false;
    }
    Ok((status, reusable))
}

/// What the load did.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Requests answered with 2xx.
    pub ok: u64,
    /// Requests that failed or got another status.
    pub failed: u64,
    /// The first few failures.
    pub first_failures: Vec<String>,
}

/// Client threads running until [`Load::stop`] (or drop).
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

/// The pause between two requests of one client thread: the load is bounded.
const PAUSE: Duration = Duration::from_millis(10);

impl Load {
    /// Starts `threads` clients cycling through `requests`; even-numbered clients keep their
    /// connection alive, odd-numbered ones open a new connection per request.
    pub fn start(threads: usize, requests: Vec<Request>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..threads)
            .map(|index| {
                let (stop, ok, failed, failures) =
                    (stop.clone(), ok.clone(), failed.clone(), failures.clone());
                let requests = requests.clone();
                thread::Builder::new()
                    .name(format!("load-{index}"))
                    .spawn(move || {
                        let mut client = Client {
                            keep_alive: index % 2 == 0,
                            connection: None,
                        };
                        let mut n = index;
                        while !stop.load(Ordering::Relaxed) {
                            let request = &requests[n % requests.len()];
                            n += 1;
                            match client.send(request) {
                                Ok(status) if (200..300).contains(&status) => {
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                                outcome => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                    if let Ok(mut kept) = failures.lock() {
                                        if kept.len() < 5 {
                                            kept.push(format!(
                                                "{} {}: {outcome:?}",
                                                request.method, request.path
                                            ));
                                        }
                                    }
                                }
                            }
                            thread::sleep(PAUSE);
                        }
                    })
                    .expect("spawning a load thread")
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            failures,
            threads,
        }
    }

    /// Stops the clients and says what they did.
    pub fn stop(mut self) -> LoadOutcome {
        self.halt();
        LoadOutcome {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            first_failures: self.failures.lock().map(|f| f.clone()).unwrap_or_default(),
        }
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.halt();
    }
}
