//! goroscope is right on real Go services: Debian's `prometheus`, `etcd` (etcd-server), `caddy` and
//! `prometheus-node-exporter` (go1.19.8, stripped, cgo), installed by scripts/install-daemons.sh
//! (once per test binary, services kept stopped) and started by each test on loopback with free
//! ports and temporary directories. The ground truth is each daemon's own goroutine dump,
//! `/debug/pprof/goroutine?debug=2` (prometheus on its web port, etcd with `--enable-pprof` on its
//! client URL, caddy on its admin endpoint, node_exporter on its web port: it does serve
//! /debug/pprof/), and `go_goroutines` in its `/metrics`.
//!
//! Per daemon, after it has settled:
//! - **Sanity of the ground truth**: two dumps a second apart agree on most goroutines, and
//!   `go_goroutines` exceeds the dump (without the dump's own serving goroutines) by a steady few:
//!   the goroutines serving that scrape (its connection, its reader, the metrics library's
//!   collectors), which `/metrics` cannot show. That excess, measured here, is what check (a)
//!   takes off `go_goroutines`. A daemon failing this fails as a harness problem, not goroscope's.
//! - **Idle**: a dump, `/metrics`, `goroscope goroutines --duration 3s --interval 100ms`, a dump.
//!   The goroutines serving a dump (frames in `runtime/pprof` or `net/http/pprof`, and the
//!   connection reader net/http starts for that request) are left out. (a) goroscope's
//!   `goroutines.total` lies between the two dumps' totals, and within that spread of
//!   `go_goroutines` minus its scrape's serving goroutines; (b) every goroscope group, keyed by
//!   (wait reason or state, blocking frame function/file/line, creation function and line), has a
//!   count between the two dumps' counts for that key, and every key the dumps agree on is in
//!   goroscope with that count; the dumps' blocking frame is chosen by goroscope's documented rule
//!   (first frame in the program's own code, else first outside the runtime and `internal/…`, else
//!   the innermost); (c) no leak suspects.
//! - **Under load**: four client threads (two keep-alive, two with a new connection per request)
//!   do real API requests for the whole run; `goroscope goroutines --duration 5s` must succeed
//!   with no leak suspects, and every request must succeed.
//!
//! Every daemon and phase prints one line on stderr (`--nocapture` shows them): dump totals
//! before/after (all/without serving), `go_goroutines`, goroscope's total and
//! `goroutines.runtime` when reported, the number of leak suspects, then every mismatching key with
//! both sides. A failing test panics with all of it. Run:
//! `cargo test -p goroscope --test real_daemons -- --nocapture --test-threads 4` (as root).

mod agent_support;
mod common;
mod daemons_support;

use std::collections::BTreeSet;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use daemons_support::compare::{goroscope_counts, mismatches, pprof_key, self_agreement, Dump};
use daemons_support::daemon::{Daemon, Kind};
use daemons_support::load::Load;
use daemons_support::{dump, go_goroutines, goroscope_report, load_requests};

/// What one daemon's test printed and what failed.
struct Table {
    daemon: &'static str,
    lines: Vec<String>,
    failures: Vec<String>,
}

impl Table {
    fn new(kind: Kind) -> Table {
        Table {
            daemon: kind.name(),
            lines: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Prints a line of the table on stderr and keeps it for the panic message.
    fn line(&mut self, phase: &str, text: &str) {
        let line = format!("[{} {phase}] {text}", self.daemon);
        eprintln!("{line}");
        self.lines.push(line);
    }

    /// An indented detail line under the last line.
    fn detail(&mut self, text: &str) {
        let line = format!("    {text}");
        eprintln!("{line}");
        self.lines.push(line);
    }

    fn fail(&mut self, phase: &str, text: String) {
        self.failures
            .push(format!("[{} {phase}] {text}", self.daemon));
    }

    /// Panics with every failure and the whole table, if anything failed.
    #[track_caller]
    fn finish(self) {
        if !self.failures.is_empty() {
            panic!(
                "{}: {} check(s) failed:\n- {}\n\nThe table:\n{}",
                self.daemon,
                self.failures.len(),
                self.failures.join("\n- "),
                self.lines.join("\n")
            );
        }
    }
}

/// How many more goroutines `go_goroutines` counts than a dump without its serving goroutines:
/// the goroutines serving that scrape. Its connection's goroutine and reader are certain; the
/// metrics library's collector goroutines come and go while it gathers, so the most is measured
/// on the daemon and the least is those two.
struct ScrapeServing {
    min: u64,
    max: u64,
}

/// Two dumps a second apart agree on at least this share of goroutines.
const SELF_AGREEMENT: f64 = 0.8;
/// A scrape's goroutines that are always there: its connection's and that connection's reader.
const CERTAIN_SCRAPE_SERVING: u64 = 2;
/// Rounds of (dump, /metrics, dump) measuring a scrape's serving goroutines.
const CALIBRATION_ROUNDS: usize = 5;
/// How many more collector goroutines one scrape may have in flight than the most the
/// calibration rounds saw (caddy's went 5, 5, 5, 5, 5 in calibration and 6 the scrape after).
const SCRAPE_JITTER: u64 = 2;

/// A short name of a goroutine for "came and went" lists.
fn short(key: &daemons_support::compare::Key) -> String {
    format!("[{}] {}", key.label, key.blocked_function)
}

/// The keys of goroutines in one dump and not in the other, by id.
fn came_and_went(first: &Dump, second: &Dump) -> (Vec<String>, Vec<String>) {
    let ids = |d: &Dump| d.clean().map(|g| g.id).collect::<BTreeSet<u64>>();
    let (a, b) = (ids(first), ids(second));
    let list = |d: &Dump, other: &BTreeSet<u64>| {
        d.clean()
            .filter(|g| !other.contains(&g.id))
            .map(|g| format!("{} {}", g.id, short(&pprof_key(g))))
            .collect::<Vec<_>>()
    };
    (list(first, &b), list(second, &a))
}

/// Checks the daemon's own ground truth and measures its scrape's serving goroutines.
#[track_caller]
fn sanity(daemon: &Daemon, table: &mut Table) -> ScrapeServing {
    let first = dump(daemon);
    sleep(Duration::from_secs(1));
    let second = dump(daemon);
    let (stable, all, differ) = self_agreement(&first.counts(), &second.counts());
    let (went, came) = came_and_went(&first, &second);
    table.line(
        "sanity",
        &format!(
            "two dumps 1 s apart: {} and {} (all/without serving); {stable} of {all} goroutines in \
             keys with equal counts; {} ended, {} started",
            first.totals(),
            second.totals(),
            went.len(),
            came.len()
        ),
    );
    for (key, a, b) in &differ {
        table.detail(&format!("differs: {a} then {b}: {key}"));
    }
    for g in &went {
        table.detail(&format!("ended: {g}"));
    }
    for g in &came {
        table.detail(&format!("started: {g}"));
    }
    assert!(
        stable as f64 >= SELF_AGREEMENT * all as f64,
        "harness sanity: {}'s own dumps a second apart agree on only {stable} of {all} goroutines:\n{}",
        daemon.kind.name(),
        table.lines.join("\n")
    );
    let mut excess = Vec::new();
    let mut rounds = Vec::new();
    for _ in 0..CALIBRATION_ROUNDS {
        let before = dump(daemon).clean_total();
        let metrics = go_goroutines(daemon);
        let after = dump(daemon).clean_total();
        rounds.push(format!("{before}/{metrics}/{after}"));
        if before == after {
            excess.push(metrics.checked_sub(before).unwrap_or_else(|| {
                panic!(
                    "harness sanity: {} reports go_goroutines {metrics}, fewer than the {before} \
                     goroutines of its dumps",
                    daemon.kind.name()
                )
            }));
        }
    }
    let (min, max) = (
        excess.iter().copied().min().unwrap_or(0),
        excess.iter().copied().max().unwrap_or(0),
    );
    table.line(
        "sanity",
        &format!(
            "go_goroutines counts {min}..{max} goroutines serving its own scrape (dump/metrics/dump \
             rounds: {}); check (a) allows {CERTAIN_SCRAPE_SERVING}..{}",
            rounds.join(" "),
            max + SCRAPE_JITTER
        ),
    );
    assert!(
        excess.len() * 2 > CALIBRATION_ROUNDS
            && (CERTAIN_SCRAPE_SERVING..=12).contains(&min)
            && (CERTAIN_SCRAPE_SERVING..=12).contains(&max),
        "harness sanity: {}'s go_goroutines does not exceed its dumps by a steady 2..12 serving \
         goroutines (rounds dump/metrics/dump: {})",
        daemon.kind.name(),
        rounds.join(" ")
    );
    ScrapeServing {
        min: CERTAIN_SCRAPE_SERVING,
        max: max + SCRAPE_JITTER,
    }
}

/// `goroutines.runtime` as reported, or "-".
fn runtime_field(report: &Value) -> String {
    report["goroutines"]
        .get("runtime")
        .map_or_else(|| "-".to_owned(), Value::to_string)
}

/// The leak suspects, one line each.
fn suspects(report: &Value) -> Vec<String> {
    report["leak_suspects"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|s| {
                    format!(
                        "suspect: {} [{}] blocked at {} ({}:{}), created by {} line {}, blocked \
                         ≥ {:.1} s, score {:.3}",
                        s["count"],
                        s["wait_reason"].as_str().unwrap_or("?"),
                        s["blocked_at"]["function"].as_str().unwrap_or("?"),
                        s["blocked_at"]["file"].as_str().unwrap_or("?"),
                        s["blocked_at"]["line"],
                        s["creation_function"].as_str().unwrap_or("?"),
                        s["creation_line"],
                        s["min_blocked_seconds"].as_f64().unwrap_or(f64::NAN),
                        s["leak_score"].as_f64().unwrap_or(f64::NAN),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Phase 1: the idle daemon against its own dumps.
#[track_caller]
fn idle(daemon: &Daemon, serving: &ScrapeServing, table: &mut Table) {
    // The goroutines of the sanity check's last requests finish first.
    sleep(Duration::from_secs(1));
    let before = dump(daemon);
    let metrics = go_goroutines(daemon);
    let report = goroscope_report(daemon.pid(), &["--duration", "3s", "--interval", "100ms"]);
    let after = dump(daemon);
    let (b, a) = (before.clean_total(), after.clean_total());
    let (low, high) = (b.min(a), b.max(a));
    let spread = high - low;
    let from_metrics = (
        metrics.saturating_sub(serving.max),
        metrics.saturating_sub(serving.min),
    );
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            table.line(
                "idle",
                &format!(
                    "pprof before {}, after {} (all/without serving) | go_goroutines {metrics} | \
                     goroscope FAILED",
                    before.totals(),
                    after.totals()
                ),
            );
            table.fail("idle", e);
            return;
        }
    };
    let total = report["goroutines"]["total"].as_u64();
    let suspect_lines = suspects(&report);
    let counts = goroscope_counts(&report);
    let found = counts
        .as_ref()
        .map(|c| mismatches(&before.counts(), &after.counts(), c))
        .unwrap_or_default();
    table.line(
        "idle",
        &format!(
            "pprof before {}, after {} (all/without serving) | go_goroutines {metrics} - {}..{} \
             serving = {}..{} | goroscope total {}, runtime {} | leak suspects {} | key mismatches {}",
            before.totals(),
            after.totals(),
            serving.min,
            serving.max,
            from_metrics.0,
            from_metrics.1,
            total.map_or_else(|| "missing".to_owned(), |t| t.to_string()),
            runtime_field(&report),
            suspect_lines.len(),
            found.len()
        ),
    );
    for (key, b, a) in self_agreement(&before.counts(), &after.counts()).2 {
        table.detail(&format!(
            "came or went at idle: {b} before, {a} after: {key}"
        ));
    }
    for m in &found {
        table.detail(&format!("mismatch: {m}"));
    }
    for s in &suspect_lines {
        table.detail(s);
    }
    match total {
        None => table.fail("idle", "the report has no goroutines.total".into()),
        Some(total) => {
            if !(low..=high).contains(&total) {
                table.fail(
                    "idle",
                    format!(
                        "goroutines.total {total} is not within the dumps' {b} before / {a} after \
                         (without their serving goroutines)"
                    ),
                );
            }
            let (m_low, m_high) = (
                from_metrics.0.saturating_sub(spread),
                from_metrics.1 + spread,
            );
            if !(m_low..=m_high).contains(&total) {
                table.fail(
                    "idle",
                    format!(
                        "goroutines.total {total} is not go_goroutines {metrics} minus its scrape's \
                         {}..{} serving goroutines, {m_low}..{m_high} (the dumps' spread {spread} \
                         allowed)",
                        serving.min, serving.max
                    ),
                );
            }
        }
    }
    match counts {
        Err(e) => table.fail("idle", format!("goroscope's groups[] cannot be read: {e}")),
        Ok(_) if !found.is_empty() => table.fail(
            "idle",
            format!(
                "{} group key(s) where goroscope's count is not between the two dumps' counts \
                 (the `mismatch:` lines)",
                found.len()
            ),
        ),
        Ok(_) => {}
    }
    if !suspect_lines.is_empty() {
        table.fail(
            "idle",
            format!(
                "{} leak suspect(s) on a healthy idle daemon (the `suspect:` lines)",
                suspect_lines.len()
            ),
        );
    }
}

/// Phase 2: the daemon under a bounded request load.
#[track_caller]
fn under_load(daemon: &Daemon, table: &mut Table) {
    let load = Load::start(4, load_requests(daemon));
    sleep(Duration::from_secs(1));
    let before = dump(daemon);
    let metrics = go_goroutines(daemon);
    let report = goroscope_report(daemon.pid(), &["--duration", "5s"]);
    let after = dump(daemon);
    let outcome = load.stop();
    let (summary, suspect_lines) = match &report {
        Ok(report) => {
            let lines = suspects(report);
            (
                format!(
                    "goroscope total {}, runtime {} | leak suspects {}",
                    report["goroutines"]["total"],
                    runtime_field(report),
                    lines.len()
                ),
                lines,
            )
        }
        Err(_) => ("goroscope FAILED".to_owned(), Vec::new()),
    };
    table.line(
        "load",
        &format!(
            "requests {} ok, {} failed | pprof before {}, after {} (all/without serving) | \
             go_goroutines {metrics} | {summary}",
            outcome.ok,
            outcome.failed,
            before.totals(),
            after.totals()
        ),
    );
    for s in &suspect_lines {
        table.detail(s);
    }
    if let Err(e) = report {
        table.fail("load", e);
    }
    if !suspect_lines.is_empty() {
        table.fail(
            "load",
            format!(
                "{} leak suspect(s) on a healthy daemon under load (the `suspect:` lines)",
                suspect_lines.len()
            ),
        );
    }
    if outcome.ok == 0 || outcome.failed > 0 {
        table.fail(
            "load",
            format!(
                "the load itself went wrong ({} ok, {} failed): {:?}",
                outcome.ok, outcome.failed, outcome.first_failures
            ),
        );
    }
}

#[track_caller]
fn check_daemon(kind: Kind) {
    let started = Instant::now();
    let mut daemon = Daemon::start(kind);
    let mut table = Table::new(kind);
    table.line(
        "start",
        &format!(
            "PID {} serving on {} (ready and settled after {:.1} s)",
            daemon.pid(),
            daemon.debug,
            started.elapsed().as_secs_f64()
        ),
    );
    let serving = sanity(&daemon, &mut table);
    idle(&daemon, &serving, &mut table);
    daemon.assert_alive();
    under_load(&daemon, &mut table);
    daemon.assert_alive();
    table.line(
        "done",
        &format!("in {:.1} s", started.elapsed().as_secs_f64()),
    );
    drop(daemon);
    table.finish();
}

#[test]
fn prometheus_goroutines_match_its_own_dump() {
    check_daemon(Kind::Prometheus);
}

#[test]
fn etcd_goroutines_match_its_own_dump() {
    check_daemon(Kind::Etcd);
}

#[test]
fn caddy_goroutines_match_its_own_dump() {
    check_daemon(Kind::Caddy);
}

#[test]
fn node_exporter_goroutines_match_its_own_dump() {
    check_daemon(Kind::NodeExporter);
}
