//! A headless-browser harness for integration tests of HTML pages (goroscope's
//! self-contained report): [`open`] loads a local HTML file in Debian's
//! `chromium`, headless and without any network, and hands back the DOM after
//! the page's scripts ran, every console message, uncaught exception and
//! failed resource load, and a full-page screenshot saved as a test artifact
//! under `<workspace>/target/test-artifacts/`.
//!
//! Chromium runs inside a fresh network namespace (`unshare --net`, as root),
//! where only a loopback interface that is down exists: nothing the page
//! references can be fetched, not even from the host's own loopback. The
//! harness drives it over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`, file descriptors 3 and 4), because chromium's
//! stderr log (`--enable-logging=stderr`) prints every page console message at
//! level INFO, whatever the call (`console.error` included), and never prints
//! failed resource loads. Page timers run on virtual time for
//! [`VIRTUAL_TIME_BUDGET_MS`] (like `--virtual-time-budget`), so a page that
//! renders from `setTimeout` is finished without waiting in real time.
//!
//! A missing `chromium` or `unshare` makes [`open`] panic with the way to
//! install it (`scripts/install-deps.sh`): tests using it never skip.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// How long one [`open`] may take, chromium's start and exit included.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// How much virtual time the page's timers get after navigation starts.
pub const VIRTUAL_TIME_BUDGET_MS: u64 = 5000;
/// The width of the page's viewport and of the screenshot, in CSS pixels.
pub const WINDOW_WIDTH: u32 = 1280;
/// The height of the page's viewport; the screenshot covers the whole page
/// (at least this height) anyway.
pub const WINDOW_HEIGHT: u32 = 800;
/// The screenshot is cut at this height, in CSS pixels.
pub const MAX_SCREENSHOT_HEIGHT: u32 = 16384;

/// What a page did once loaded in chromium.
#[derive(Debug)]
pub struct Page {
    /// The document serialized after its scripts ran (doctype and `<html>`).
    pub dom: String,
    /// Console calls, uncaught exceptions, chromium's own messages about the
    /// page and failed resource loads, in the order chromium reported them.
    pub console: Vec<ConsoleMessage>,
    /// Every resource load that failed (each also in `console`).
    pub failed_requests: Vec<FailedRequest>,
    /// The full-page PNG screenshot.
    pub screenshot: PathBuf,
}

/// One message about the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleMessage {
    pub level: Level,
    pub kind: Kind,
    /// The message: a console call's arguments joined by spaces, an
    /// exception's `Uncaught ...` line and stack, or chromium's text.
    pub text: String,
    /// Where it comes from: `url:line` (line from 1), a bare URL, or empty.
    pub source: String,
}

/// A console message's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    /// `console.log`, `console.info` and the like.
    Info,
    Warning,
    /// `console.error`, a failed `console.assert`, an uncaught exception, a
    /// failed load.
    Error,
}

/// What produced a console message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `console.*` call of the page.
    Console,
    /// An uncaught exception or unhandled promise rejection.
    Exception,
    /// Chromium itself (deprecations, interventions, security errors, ...).
    Browser,
    /// A resource that could not be loaded (see [`FailedRequest`]).
    FailedLoad,
}

/// A resource load that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRequest {
    pub url: String,
    /// Chromium's error, e.g. `net::ERR_FILE_NOT_FOUND`.
    pub error: String,
}

/// An element found in [`Page::dom`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The tag name, lower case.
    pub tag: String,
    pub attrs: BTreeMap<String, String>,
    /// The text of the element and its descendants, concatenated.
    pub text: String,
    pub inner_html: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
}

impl Page {
    /// The console messages of level warning or error: `console.error` and
    /// `console.warn` calls, uncaught exceptions, failed loads.
    pub fn errors(&self) -> Vec<&ConsoleMessage> {
        self.console
            .iter()
            .filter(|m| m.level >= Level::Warning)
            .collect()
    }

    /// The `<tag>` elements of the DOM that have `class` among their classes.
    pub fn elements_with_class(&self, tag: &str, class: &str) -> Vec<Element> {
        let html = scraper::Html::parse_document(&self.dom);
        html.root_element()
            .descendent_elements()
            .filter(|e| {
                e.value().name().eq_ignore_ascii_case(tag)
                    && e.value().classes().any(|c| c == class)
            })
            .map(element)
            .collect()
    }

    /// The elements of the DOM matching a CSS selector.
    #[track_caller]
    pub fn select(&self, css: &str) -> Vec<Element> {
        let selector = scraper::Selector::parse(css)
            .unwrap_or_else(|e| panic!("invalid CSS selector {css:?}: {e}"));
        scraper::Html::parse_document(&self.dom)
            .select(&selector)
            .map(element)
            .collect()
    }

    /// Whether an element of the DOM has this id.
    pub fn has_id(&self, id: &str) -> bool {
        scraper::Html::parse_document(&self.dom)
            .root_element()
            .descendent_elements()
            .any(|e| e.value().id() == Some(id))
    }
}

fn element(e: scraper::ElementRef<'_>) -> Element {
    Element {
        tag: e.value().name().to_string(),
        attrs: e
            .value()
            .attrs()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        text: e.text().collect(),
        inner_html: e.inner_html(),
    }
}

/// Where screenshots go: `<workspace>/target/test-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .ancestors()
        .nth(2)
        .expect("CARGO_MANIFEST_DIR is <workspace>/crates/goroscope");
    workspace.join("target").join("test-artifacts")
}

/// Loads `file://<html>` in headless chromium with no network, lets its
/// scripts run, and returns what it did; the screenshot is saved as
/// `<workspace>/target/test-artifacts/<screenshot_name>.png`. Panics if
/// chromium is missing, fails, or takes longer than [`TIMEOUT`].
#[track_caller]
pub fn open(html: &Path, screenshot_name: &str) -> Page {
    assert!(
        !screenshot_name.is_empty()
            && screenshot_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !screenshot_name.starts_with('.'),
        "screenshot name {screenshot_name:?}: use letters, digits, '-', '_' and '.'"
    );
    let html =
        fs::canonicalize(html).unwrap_or_else(|e| panic!("page to open {}: {e}", html.display()));
    let dir = artifacts_dir();
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let screenshot = dir.join(format!("{screenshot_name}.png"));
    let url = file_url(&html);
    let temp = TempDir::new();
    let mut browser = Browser::start(&temp.0);
    let result = browser.load(&url, &screenshot);
    let exit = browser.close();
    let stderr = fs::read_to_string(temp.0.join("stderr.log")).unwrap_or_default();
    match (result, exit) {
        (Ok((dom, console, failed_requests)), Ok(())) => Page {
            dom,
            console,
            failed_requests,
            screenshot,
        },
        (Err(e), _) | (Ok(_), Err(e)) => panic!(
            "chromium on {url}: {e}\nchromium's stderr ends with:\n{}",
            tail(&stderr, 25)
        ),
    }
}

/// The path of the `chromium` binary, or a panic saying how to install it.
#[track_caller]
pub fn chromium() -> PathBuf {
    chromium_on(&std::env::var_os("PATH").unwrap_or_default())
}

/// [`chromium`] with this `PATH`.
#[track_caller]
pub fn chromium_on(path: &std::ffi::OsStr) -> PathBuf {
    find_in_path(path, "chromium").unwrap_or_else(|| {
        panic!(
            "chromium not found on PATH: the browser tests need Debian's chromium; \
             run scripts/install-deps.sh as root to install it"
        )
    })
}

#[track_caller]
fn unshare() -> PathBuf {
    find_in_path(&std::env::var_os("PATH").unwrap_or_default(), "unshare").unwrap_or_else(|| {
        panic!(
            "unshare not found on PATH: the browser tests run chromium without network \
             through it; run scripts/install-deps.sh as root (util-linux)"
        )
    })
}

fn find_in_path(path: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path).map(|d| d.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(*b as char)
            }
            _ => url.push_str(&format!("%{b:02X}")),
        }
    }
    url
}

/// The last lines of chromium's log, without its complaints about the D-Bus
/// that test machines lack.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.contains("dbus")).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    #[track_caller]
    fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "goroscope-browser-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A chromium process and its DevTools pipe.
struct Browser {
    child: Child,
    to_browser: File,
    from_browser: Receiver<Value>,
    deadline: Instant,
    next_id: u64,
    session: Option<String>,
    /// Every event received so far, in order.
    events: Vec<Value>,
}

/// A pipe whose two ends are close-on-exec and numbered 10 or above, so that
/// the child can `dup2` them onto 3 and 4 without clobbering one another.
#[track_caller]
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        0,
        "pipe2"
    );
    let high = fds.map(|fd| {
        // SAFETY: fd is an open descriptor this function owns.
        let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        assert!(new >= 10, "fcntl(F_DUPFD_CLOEXEC)");
        // SAFETY: as above; it is closed once, here.
        unsafe { libc::close(fd) };
        // SAFETY: new is an open descriptor nothing else owns.
        unsafe { OwnedFd::from_raw_fd(new) }
    });
    let [read, write] = high;
    (read, write)
}

impl Browser {
    #[track_caller]
    fn start(temp: &Path) -> Browser {
        let chromium = chromium();
        let unshare = unshare();
        let profile = temp.join("profile");
        let stderr_path = temp.join("stderr.log");
        let stderr = File::create(&stderr_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", stderr_path.display()));
        let (browser_reads, we_write) = pipe();
        let (we_read, browser_writes) = pipe();
        let (r, w) = {
            use std::os::fd::AsRawFd;
            (browser_reads.as_raw_fd(), browser_writes.as_raw_fd())
        };
        let mut command = Command::new(unshare);
        command
            .arg("--net")
            .arg("--")
            .arg(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-sync",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--disable-breakpad",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--mute-audio",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("dup of chromium's log file"))
            .stderr(stderr)
            .process_group(0);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting unshare --net {}: {e}", chromium.display()));
        drop(browser_reads);
        drop(browser_writes);
        let (tx, rx) = mpsc::channel();
        let mut reader = BufReader::new(File::from(we_read));
        thread::spawn(move || loop {
            let mut message = Vec::new();
            match reader.read_until(0, &mut message) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if message.last() == Some(&0) {
                message.pop();
            }
            let value = serde_json::from_slice(&message).unwrap_or_else(|e| {
                json!({"harness_error": format!("bad DevTools message: {e}: {}",
                        String::from_utf8_lossy(&message))})
            });
            if tx.send(value).is_err() {
                return;
            }
        });
        Browser {
            child,
            to_browser: File::from(we_write),
            from_browser: rx,
            deadline: Instant::now() + TIMEOUT,
            next_id: 1,
            session: None,
            events: Vec::new(),
        }
    }

    /// The next message from chromium, before the deadline.
    fn receive(&mut self) -> Result<Value, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.from_browser.recv_timeout(left) {
            Ok(v) => match v.get("harness_error") {
                Some(e) => Err(e.as_str().unwrap_or_default().to_string()),
                None => Ok(v),
            },
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("no answer within {}s", TIMEOUT.as_secs()))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                Err(format!(
                    "chromium closed its DevTools pipe (exit status: {status:?})"
                ))
            }
        }
    }

    /// Sends a DevTools command (to the page once attached) and returns its
    /// result; events that arrive meanwhile are kept in `events`.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("JSON of a DevTools command");
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .map_err(|e| format!("sending {method}: {e}"))?;
        loop {
            let v = self.receive().map_err(|e| format!("{method}: {e}"))?;
            if v.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(error) = v.get("error") {
                    return Err(format!("{method} failed: {error}"));
                }
                return Ok(v.get("result").cloned().unwrap_or(Value::Null));
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    /// Waits until an event named `method` has arrived.
    fn wait_for(&mut self, method: &str) -> Result<(), String> {
        while !self.events.iter().any(|e| e["method"] == method) {
            let v = self
                .receive()
                .map_err(|e| format!("waiting for {method}: {e}"))?;
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn load(
        &mut self,
        url: &str,
        screenshot: &Path,
    ) -> Result<(String, Vec<ConsoleMessage>, Vec<FailedRequest>), String> {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}))?;
        let target_id = target["targetId"].clone();
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        )?;
        let session = attached["sessionId"]
            .as_str()
            .ok_or("Target.attachToTarget gave no sessionId")?;
        self.session = Some(session.to_string());
        for domain in ["Page", "Runtime", "Log", "Network"] {
            self.call(&format!("{domain}.enable"), json!({}))?;
        }
        // The page's viewport is exactly the window size asked for (headless
        // chromium's own window leaves the page less height than that).
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": WINDOW_WIDTH, "height": WINDOW_HEIGHT, "deviceScaleFactor": 1, "mobile": false}),
        )?;
        // Timers run on virtual time from the start of navigation, as with
        // --virtual-time-budget: paused until then, then the budget.
        self.call("Emulation.setVirtualTimePolicy", json!({"policy": "pause"}))?;
        let navigated = self.call("Page.navigate", json!({"url": url}))?;
        if let Some(error) = navigated.get("errorText") {
            return Err(format!("navigation failed: {error}"));
        }
        self.call(
            "Emulation.setVirtualTimePolicy",
            json!({"policy": "pauseIfNetworkFetchesPending", "budget": VIRTUAL_TIME_BUDGET_MS}),
        )?;
        self.wait_for("Page.loadEventFired")?;
        self.wait_for("Emulation.virtualTimeBudgetExpired")?;

        let dom = self.call(
            "Runtime.evaluate",
            json!({
                "expression": "(document.doctype ? '<!DOCTYPE ' + document.doctype.name + '>\\n' : '') + document.documentElement.outerHTML",
                "returnByValue": true,
            }),
        )?;
        if let Some(e) = dom.get("exceptionDetails") {
            return Err(format!("reading the DOM: {e}"));
        }
        let dom = dom["result"]["value"]
            .as_str()
            .ok_or("reading the DOM gave no string")?
            .to_string();

        let metrics = self.call("Page.getLayoutMetrics", json!({}))?;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(f64::from(WINDOW_WIDTH));
        let height = size["height"].as_f64().unwrap_or(f64::from(WINDOW_HEIGHT));
        let shot = self.call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {
                    "x": 0, "y": 0, "scale": 1,
                    "width": width.max(1.0).ceil(),
                    "height": height.clamp(1.0, f64::from(MAX_SCREENSHOT_HEIGHT)).ceil(),
                },
            }),
        )?;
        let png = base64_decode(shot["data"].as_str().ok_or("screenshot gave no data")?)
            .ok_or("screenshot data is not base64")?;
        fs::write(screenshot, png).map_err(|e| format!("writing {}: {e}", screenshot.display()))?;

        let (console, failed) = messages(&self.events);
        Ok((dom, console, failed))
    }

    /// Asks chromium to exit and waits for it; kills its process group if
    /// it takes too long.
    fn close(mut self) -> Result<(), String> {
        self.session = None;
        let asked = self.call("Browser.close", json!({})).is_ok();
        let give_up = if asked {
            Instant::now() + Duration::from_secs(10)
        } else {
            Instant::now()
        };
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < give_up => thread::sleep(Duration::from_millis(20)),
                _ => break,
            }
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) of the process group this harness started
        // (chromium leads it: unshare execs it); the leader is not reaped yet,
        // so the group id cannot have been reused.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
        if asked {
            Err("chromium did not exit within 10s of Browser.close; killed".to_string())
        } else {
            Ok(())
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = self.child.id() as libc::pid_t;
            // SAFETY: as in close(): our own, unreaped process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// Turns the DevTools events into console messages and failed loads.
fn messages(events: &[Value]) -> (Vec<ConsoleMessage>, Vec<FailedRequest>) {
    let mut console = Vec::new();
    let mut failed = Vec::new();
    let mut urls: HashMap<&str, &str> = HashMap::new();
    for event in events {
        let p = &event["params"];
        match event["method"].as_str().unwrap_or_default() {
            "Runtime.consoleAPICalled" => {
                let level = match p["type"].as_str().unwrap_or_default() {
                    "error" | "assert" => Level::Error,
                    "warning" => Level::Warning,
                    "debug" => Level::Debug,
                    _ => Level::Info,
                };
                let text = p["args"]
                    .as_array()
                    .map(|args| args.iter().map(remote_object).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default();
                let frame = &p["stackTrace"]["callFrames"][0];
                console.push(ConsoleMessage {
                    level,
                    kind: Kind::Console,
                    text,
                    source: location(&frame["url"], &frame["lineNumber"]),
                });
            }
            "Runtime.exceptionThrown" => {
                let d = &p["exceptionDetails"];
                let what = d["exception"]["description"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| d["exception"].get("value").map(|v| v.to_string()));
                let text = match what {
                    Some(what) => format!("{} {what}", d["text"].as_str().unwrap_or("Uncaught")),
                    None => d["text"].as_str().unwrap_or("Uncaught").to_string(),
                };
                console.push(ConsoleMessage {
                    level: Level::Error,
                    kind: Kind::Exception,
                    text,
                    source: location(&d["url"], &d["lineNumber"]),
                });
            }
            // Chromium also logs each failed load here ("Failed to load
            // resource: net::ERR_..."): failed loads are taken from
            // Network.loadingFailed alone, so each shows once, with its URL.
            "Log.entryAdded" if p["entry"]["source"] != "network" => {
                let e = &p["entry"];
                let level = match e["level"].as_str().unwrap_or_default() {
                    "error" => Level::Error,
                    "warning" => Level::Warning,
                    "verbose" => Level::Debug,
                    _ => Level::Info,
                };
                console.push(ConsoleMessage {
                    level,
                    kind: Kind::Browser,
                    text: e["text"].as_str().unwrap_or_default().to_string(),
                    source: location(&e["url"], &e["lineNumber"]),
                });
            }
            "Network.requestWillBeSent" => {
                if let (Some(id), Some(url)) =
                    (p["requestId"].as_str(), p["request"]["url"].as_str())
                {
                    urls.insert(id, url);
                }
            }
            "Network.loadingFailed" => {
                let url = p["requestId"]
                    .as_str()
                    .and_then(|id| urls.get(id))
                    .unwrap_or(&"<unknown URL>")
                    .to_string();
                let mut error = p["errorText"].as_str().unwrap_or_default().to_string();
                if let Some(reason) = p["blockedReason"].as_str() {
                    error = format!("{error} (blocked: {reason})");
                }
                console.push(ConsoleMessage {
                    level: Level::Error,
                    kind: Kind::FailedLoad,
                    text: format!("Failed to load {url}: {error}"),
                    source: url.clone(),
                });
                failed.push(FailedRequest { url, error });
            }
            _ => {}
        }
    }
    (console, failed)
}

/// `url:line` (line from 1), the bare URL, or empty.
fn location(url: &Value, line: &Value) -> String {
    match (url.as_str().filter(|u| !u.is_empty()), line.as_u64()) {
        (Some(url), Some(line)) => format!("{url}:{}", line + 1),
        (Some(url), None) => url.to_string(),
        _ => String::new(),
    }
}

/// A console argument as chromium's own log shows it.
fn remote_object(o: &Value) -> String {
    if let Some(s) = o["value"].as_str() {
        return s.to_string();
    }
    if let Some(u) = o["unserializableValue"].as_str() {
        return u.to_string();
    }
    if let Some(d) = o["description"].as_str() {
        return d.to_string();
    }
    match o.get("value") {
        Some(v) => v.to_string(),
        None => o["type"].as_str().unwrap_or_default().to_string(),
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}
