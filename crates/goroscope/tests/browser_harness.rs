//! Tests of the headless-browser harness (`tests/browser/`) itself: the DOM it
//! returns is the one after scripts ran, console errors and uncaught
//! exceptions are reported and a clean page has none, the page has no network
//! at all, the screenshot is a full-page PNG, and a machine without chromium
//! gets a panic that says how to install it.

mod browser;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use browser::{Kind, Level, Page};

/// A directory for one test's pages, removed when dropped.
struct Pages(PathBuf);

impl Pages {
    #[track_caller]
    fn new(test: &str) -> Pages {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "goroscope-browser-harness-{}-{}-{test}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Pages(dir)
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `html` as `<name>.html` and opens it, the screenshot named
/// `browser-harness-<name>`.
#[track_caller]
fn open(name: &str, html: &str) -> Page {
    let pages = Pages::new(name);
    let path = pages.0.join(format!("{name}.html"));
    std::fs::write(&path, html).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    browser::open(&path, &format!("browser-harness-{name}"))
}

#[test]
fn the_dom_is_the_one_after_scripts_ran() {
    let page = open(
        "dom",
        r#"<!doctype html><html><head><title>dom</title></head><body>
<p class="intro lead">static text</p>
<script>
  const d = document.createElement("div");
  d.id = "added";
  d.className = "note big";
  d.dataset.kind = "sync";
  d.textContent = "added by script";
  document.body.appendChild(d);
  // Timers run on virtual time: this one must have fired too.
  setTimeout(() => {
    const l = document.createElement("div");
    l.id = "later";
    l.className = "note";
    l.innerHTML = "added <b>later</b>";
    document.body.appendChild(l);
  }, 2000);
</script>
</body></html>"#,
    );
    assert!(page.has_id("added"), "no #added in the DOM:\n{}", page.dom);
    assert!(
        page.has_id("later"),
        "no #later (setTimeout 2 s) in the DOM:\n{}",
        page.dom
    );
    assert!(
        !page.has_id("absent"),
        "has_id found an id nowhere in the page"
    );
    let notes = page.elements_with_class("div", "note");
    assert_eq!(notes.len(), 2, "div.note elements: {notes:?}");
    assert_eq!(notes[0].text, "added by script");
    assert_eq!(notes[0].attr("id"), Some("added"));
    assert_eq!(notes[0].attr("data-kind"), Some("sync"));
    assert_eq!(notes[1].text, "added later");
    assert_eq!(notes[1].inner_html, "added <b>later</b>");
    assert!(
        page.elements_with_class("div", "no").is_empty(),
        "elements_with_class matched part of a class name"
    );
    let intro = page.elements_with_class("p", "lead");
    assert_eq!(intro.len(), 1, "p.lead elements: {intro:?}");
    assert_eq!(intro[0].text, "static text");
    assert_eq!(page.select("div.note.big").len(), 1, "div.note.big");
    assert!(page.errors().is_empty(), "errors: {:?}", page.errors());
}

#[test]
fn console_error_is_an_error() {
    let page = open(
        "console-error",
        r#"<!doctype html><html><body><p>x</p>
<script>
console.log("just", "info", 1);
console.error("boom");
</script></body></html>"#,
    );
    let errors = page.errors();
    assert_eq!(errors.len(), 1, "errors: {errors:?}");
    assert_eq!(errors[0].text, "boom");
    assert_eq!(errors[0].level, Level::Error);
    assert_eq!(errors[0].kind, Kind::Console);
    assert!(
        errors[0].source.ends_with("console-error.html:4"),
        "source of console.error: {:?}",
        errors[0].source
    );
    assert!(
        page.console
            .iter()
            .any(|m| m.text == "just info 1" && m.level == Level::Info),
        "console.log missing: {:?}",
        page.console
    );
}

#[test]
fn an_uncaught_exception_is_an_error() {
    let page = open(
        "exception",
        r#"<!doctype html><html><body><p>x</p>
<script>
setTimeout(() => { throw new Error("kaboom"); }, 100);
</script></body></html>"#,
    );
    let errors = page.errors();
    assert_eq!(errors.len(), 1, "errors: {errors:?}");
    assert_eq!(errors[0].kind, Kind::Exception, "{errors:?}");
    assert_eq!(errors[0].level, Level::Error, "{errors:?}");
    assert!(
        errors[0].text.starts_with("Uncaught Error: kaboom"),
        "exception text: {:?}",
        errors[0].text
    );
}

#[test]
fn a_clean_page_has_no_errors() {
    let page = open(
        "clean",
        r#"<!doctype html><html><head><meta charset="utf-8"><title>clean</title>
<style>body { font-family: sans-serif; } .bar { background: #36c; height: 20px; }</style>
</head><body><h1>Clean</h1><div class="bar" style="width: 300px"></div>
<img alt="dot" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==">
<script>console.log("rendered"); console.info("done");</script>
</body></html>"#,
    );
    assert!(page.errors().is_empty(), "errors: {:?}", page.errors());
    assert!(
        page.failed_requests.is_empty(),
        "failed: {:?}",
        page.failed_requests
    );
    let png = std::fs::read(&page.screenshot)
        .unwrap_or_else(|e| panic!("reading {}: {e}", page.screenshot.display()));
    assert_eq!(
        png_size(&png),
        (browser::WINDOW_WIDTH, browser::WINDOW_HEIGHT),
        "screenshot of a page shorter than the viewport"
    );
    assert!(
        page.console.iter().any(|m| m.text == "rendered"),
        "console.log missing: {:?}",
        page.console
    );
}

#[test]
fn the_page_has_no_network() {
    // A server on the host's own loopback: chromium, in its own network
    // namespace, must not reach it (nor anything else).
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let port = listener.local_addr().expect("listener address").port();
    let remote = "http://203.0.113.1/x.png";
    let local = format!("http://127.0.0.1:{port}/y.png");
    let page = open(
        "no-network",
        &format!(
            r#"<!doctype html><html><body>
<img src="{remote}"><img src="{local}"><img src="missing.png">
<script>
fetch("http://127.0.0.1:{port}/z").then(
  () => console.log("fetched"),
  (e) => console.log("fetch failed: " + e.message));
</script></body></html>"#
        ),
    );
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the page reached the host's loopback: {other:?}"),
    }
    for url in [remote, local.as_str()] {
        let failed = page.failed_requests.iter().find(|r| r.url == url);
        let failed =
            failed.unwrap_or_else(|| panic!("no failed load of {url}: {:?}", page.failed_requests));
        assert!(failed.error.starts_with("net::ERR_"), "{failed:?}");
    }
    assert!(
        page.failed_requests
            .iter()
            .any(|r| r.url.ends_with("/missing.png") && r.error == "net::ERR_FILE_NOT_FOUND"),
        "no failed load of missing.png: {:?}",
        page.failed_requests
    );
    let failed_loads = page
        .errors()
        .into_iter()
        .filter(|m| m.kind == Kind::FailedLoad)
        .count();
    assert!(
        failed_loads >= 3,
        "failed loads among errors: {:?}",
        page.errors()
    );
    assert!(
        page.console
            .iter()
            .any(|m| m.text.starts_with("fetch failed: ")),
        "the fetch did not fail: {:?}",
        page.console
    );
}

#[test]
fn the_screenshot_is_a_full_page_png() {
    let page = open(
        "screenshot",
        r#"<!doctype html><html><body style="margin: 0">
<div style="height: 2500px; background: linear-gradient(#fff, #36c)">
A tall page, text to render.</div>
</body></html>"#,
    );
    let png = std::fs::read(&page.screenshot)
        .unwrap_or_else(|e| panic!("reading {}: {e}", page.screenshot.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        page.screenshot.display()
    );
    assert!(png.len() > 10_000, "a {}-byte screenshot", png.len());
    let (width, height) = png_size(&png);
    assert_eq!(width, browser::WINDOW_WIDTH, "screenshot width");
    assert_eq!(height, 2500, "screenshot height (the whole page)");
    let expected = browser::artifacts_dir().join("browser-harness-screenshot.png");
    assert_eq!(page.screenshot, expected);
}

#[test]
fn missing_chromium_names_the_install_script() {
    let panic = std::panic::catch_unwind(|| browser::chromium_on("/nonexistent".as_ref()))
        .expect_err("chromium found on a PATH of one missing directory");
    let message = match (panic.downcast_ref::<String>(), panic.downcast_ref::<&str>()) {
        (Some(s), _) => s.clone(),
        (_, Some(s)) => s.to_string(),
        _ => panic!("chromium_on panicked without a message"),
    };
    assert!(
        message.contains("scripts/install-deps.sh"),
        "panic message: {message:?}"
    );
}

/// The width and height in a PNG's header.
#[track_caller]
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR",
        "not a PNG with its IHDR first"
    );
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    (word(16), word(20))
}
