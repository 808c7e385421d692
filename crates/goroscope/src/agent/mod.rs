//! `goroscope agent`: runs until stopped, collects continuously and serves everything it sees
//! as Prometheus metrics. The main thread collects; an HTTP thread serves the latest
//! collection. SIGHUP reloads the config file: a valid one takes effect at the next cycle
//! without resetting any counter, an invalid one is refused, logged and counted.

pub mod collection;
pub mod config;
mod connections;
mod kernel;
pub mod ledger;
pub mod otlp;
pub mod owners;
pub mod pprof;
pub mod probe;
pub mod self_metrics;
pub mod series;
pub mod server;
pub mod shared;
pub mod sources;

use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::agent::collection::Collection;
use crate::agent::config::{process_environment, AgentConfig, Exporters, SDK_DISABLED_SENTENCE};
use crate::agent::connections::raise_open_files_limit;
use crate::agent::server::{HttpLimits, Server};
use crate::agent::shared::Shared;
use crate::cli::AgentArgs;
use crate::settings::{require_privileges, UsageError};

/// Runs the agent (or, with --check, validates its config).
pub fn run(args: &AgentArgs) -> anyhow::Result<()> {
    let config = load(args)?;
    if args.check {
        let export = match &config.exporters.otlp {
            Some(otlp) => format!("; would export {}", otlp.describe()),
            None if config.exporters.sdk_disabled => {
                format!("; would not export OTLP: {SDK_DISABLED_SENTENCE}")
            }
            None => String::new(),
        };
        println!(
            "goroscope: {}: valid; would serve on {} and collect every {}{export}",
            config_name(args),
            config.listen,
            humantime::format_duration(config.interval)
        );
        return Ok(());
    }
    require_privileges(std::path::Path::new("/proc"))?;
    let stop = crate::run_control::StopSignals::catch()?;
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .context("installing a handler for SIGHUP")?;

    goroscope_bpf::init();
    let shared = Arc::new(Shared::new(stale_after(config.interval)));
    // Services often get a soft limit of 1,024 open files: each connection, BPF map and Go
    // process read takes one, so the agent uses what the hard limit allows.
    let open_files = match raise_open_files_limit() {
        Ok((before, after)) => {
            if after > before {
                eprintln!("goroscope: agent: open files limit raised from {before} to {after}");
            }
            after
        }
        Err(error) => {
            eprintln!("goroscope: agent: cannot read or raise the open files limit: {error}");
            1024
        }
    };
    let limits = HttpLimits::for_open_files(open_files);
    let server = Server::start(config.listen, Arc::clone(&shared), limits)?;
    let otlp_config = config.exporters.otlp.clone();
    let mut collection = Collection::start(config)?;
    let mut otlp = otlp::OtlpSink::default();
    otlp.configure(otlp_config.as_ref())?;
    // Tests and scripts wait for "goroscope: attached"; the address is what a scraper needs.
    eprintln!(
        "goroscope: attached (agent): serving http://{}/metrics (also /healthz, /readyz); {}; \
         collecting every {}",
        server.address(),
        collection.describe(),
        humantime::format_duration(collection.config().interval)
    );
    eprintln!(
        "goroscope: agent: HTTP: at most {} connections (the idlest is closed to admit a new \
         one); a connection sending no complete request for {} or no traffic for {} is closed",
        limits.max_connections,
        humantime::format_duration(limits.header_timeout),
        humantime::format_duration(limits.idle_timeout)
    );
    if let Some(line) = export_line(&otlp, &collection.config().exporters) {
        eprintln!("goroscope: agent: {line}");
    }
    for (name, why) in collection.down_reasons() {
        eprintln!("goroscope: agent: {name} is down: {why}");
    }
    let mut schedule = Schedule::new(Instant::now(), collection.config().interval);
    while !stop.any() {
        let now = Instant::now();
        if now >= schedule.next {
            let mut exposition = collection.cycle();
            otlp.after_cycle(&mut collection);
            otlp.families(&mut exposition);
            server.stats().families(&limits, &mut exposition);
            shared.publish(exposition);
            release_freed_memory();
            schedule.cycle_done(Instant::now());
            continue;
        }
        // At most one reload per interval, and never in place of a due cycle: a storm of SIGHUPs
        // is coalesced into one reload now and one after the next cycle, and the cycles keep
        // their cadence (a reload never triggers or postpones one).
        if schedule.may_reload(now) && reload.swap(false, Ordering::Relaxed) {
            reload_config(args, &mut collection, &mut otlp);
            shared.set_stale_after(stale_after(collection.config().interval));
            schedule.reloaded(collection.config().interval, now, Instant::now());
            continue;
        }
        // Wait in short steps so signals are answered quickly.
        schedule.waited();
        collection.wait(schedule.next.min(now + Duration::from_millis(200)));
    }
    eprintln!("goroscope: agent stopping: detaching probes");
    drop(collection);
    otlp.shutdown();
    server.stop()
}

/// When the next collection is due: on a fixed cadence of `interval` from the previous cycle's
/// start (an overrun starts the next cycle at once rather than bunching cycles up), and whether a
/// reload may be applied now: one per interval, and only when it should end before the next
/// cycle is due (judged by how long the last one took) or right after a cycle, so that a reload
/// (which may load BPF programs) delays a cycle only when a cycle and a reload together take
/// longer than an interval.
struct Schedule {
    /// When the next cycle is due.
    next: Instant,
    /// When the last cycle was due (the cadence is kept from there, not from when it ended).
    last_due: Instant,
    interval: Duration,
    /// A reload was applied since the last cycle.
    reloaded: bool,
    /// No wait since the last cycle ended.
    fresh: bool,
    /// How long the last reload took.
    reload_took: Duration,
}

impl Schedule {
    fn new(now: Instant, interval: Duration) -> Self {
        Self {
            next: now,
            last_due: now,
            interval,
            reloaded: false,
            fresh: true,
            reload_took: Duration::ZERO,
        }
    }

    /// A cycle that was due at `self.next` finished at `now`.
    fn cycle_done(&mut self, now: Instant) {
        self.last_due = self.next;
        self.next = (self.last_due + self.interval).max(now);
        self.reloaded = false;
        self.fresh = true;
    }

    /// Whether a reload may run at `now`.
    fn may_reload(&self, now: Instant) -> bool {
        !self.reloaded && (self.fresh || now + self.reload_took <= self.next)
    }

    /// The loop is about to wait for the next cycle.
    fn waited(&mut self) {
        self.fresh = false;
    }

    /// A reload that began at `began` finished at `now`, possibly changing the interval.
    fn reloaded(&mut self, interval: Duration, began: Instant, now: Instant) {
        self.reloaded = true;
        self.reload_took = now.saturating_duration_since(began);
        if interval != self.interval {
            self.interval = interval;
            self.next = (self.last_due + interval).max(now);
        }
    }
}

/// Hands memory freed by a cycle back to the kernel. A cycle's rows are transient (a burst of
/// short-lived processes makes thousands), and glibc keeps freed heap pages otherwise, so the
/// agent's RSS would stay at its highest burst forever.
fn release_freed_memory() {
    // SAFETY: malloc_trim only walks glibc's own heaps; it takes no pointers from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How long collection may go without finishing before /healthz says unhealthy: ten
/// intervals, and at least a minute (a first cycle on a busy host can be slow).
fn stale_after(interval: std::time::Duration) -> std::time::Duration {
    (interval * 10).max(std::time::Duration::from_secs(60))
}

/// Reads and validates the config (defaults without --config), with --listen applied.
fn load(args: &AgentArgs) -> anyhow::Result<AgentConfig> {
    // The standard OTEL_EXPORTER_OTLP_* variables fill what the file leaves out of
    // exporters.otlp (they are the agent's own, the same at every reload).
    let mut config = match &args.config {
        Some(path) => AgentConfig::load(path, &process_environment),
        None => AgentConfig::from_environment(&process_environment),
    }
    .map_err(|error| UsageError(error.to_string()))?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    Ok(config)
}

fn config_name(args: &AgentArgs) -> String {
    args.config.as_ref().map_or_else(
        || "built-in defaults".to_owned(),
        |p| goroscope_model::text::escape(p.as_os_str().as_bytes()).into_owned(),
    )
}

/// SIGHUP: a valid file takes effect; an invalid one leaves the running config in place.
/// Where OTLP goes, or why it goes nowhere though it was asked for, for the operator.
fn export_line(otlp: &otlp::OtlpSink, exporters: &Exporters) -> Option<String> {
    otlp.describe().or_else(|| {
        exporters
            .sdk_disabled
            .then(|| format!("not exporting OTLP: {SDK_DISABLED_SENTENCE}"))
    })
}

fn reload_config(args: &AgentArgs, collection: &mut Collection, otlp: &mut otlp::OtlpSink) {
    let Some(path) = &args.config else {
        eprintln!("goroscope: agent: SIGHUP ignored: no --config file to reload");
        return;
    };
    let began = Instant::now();
    let applied = load(args).and_then(|config| {
        // The exporter first: its settings (TLS files) can still be refused, and then nothing
        // of the new file is applied.
        otlp.configure(config.exporters.otlp.as_ref())?;
        collection.reload(config).inspect_err(|_| {
            if let Err(e) = otlp.configure(collection.config().exporters.otlp.as_ref()) {
                eprintln!("goroscope: agent: restoring the OTLP exporter failed: {e:#}");
            }
        })
    });
    match applied {
        Ok(not_applied) => {
            collection.count_reload(true);
            eprintln!(
                "goroscope: agent: reloaded {} in {:.2} s",
                goroscope_model::text::escape(path.as_os_str().as_bytes()),
                began.elapsed().as_secs_f64()
            );
            for sentence in not_applied {
                eprintln!("goroscope: agent: not applied until restart: {sentence}");
            }
            if let Some(line) = export_line(otlp, &collection.config().exporters) {
                eprintln!("goroscope: agent: {line}");
            }
        }
        Err(error) => {
            collection.count_reload(false);
            eprintln!(
                "goroscope: agent: reload refused, the running config stays in place: {error}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_neither_trigger_nor_postpone_cycles() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let second = Duration::from_secs(1);
        let mut schedule = Schedule::new(start, second);
        schedule.cycle_done(start + ms(100));
        assert_eq!(schedule.next, start + second);
        assert!(schedule.may_reload(start + ms(300)));
        schedule.reloaded(second, start + ms(300), start + ms(400));
        assert!(
            !schedule.may_reload(start + ms(500)),
            "a second reload in the same interval"
        );
        assert_eq!(schedule.next, start + second, "a reload moved the cycle");
        schedule.cycle_done(start + ms(1100));
        assert!(schedule.may_reload(start + ms(1100)));
        assert_eq!(schedule.next, start + 2 * second, "the cadence drifted");
    }

    #[test]
    fn a_reload_that_would_delay_the_next_cycle_waits_until_after_it() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut schedule = Schedule::new(start, Duration::from_secs(1));
        schedule.cycle_done(start + ms(100));
        schedule.reloaded(Duration::from_secs(1), start + ms(100), start + ms(800));
        schedule.cycle_done(start + ms(1100));
        schedule.waited();
        // The last reload took 700 ms: at 1.5 s it would end after the cycle due at 2 s.
        assert!(!schedule.may_reload(start + ms(1500)));
        assert!(schedule.may_reload(start + ms(1300)));
        // Right after a cycle it may run, however long reloads take.
        schedule.reloaded(Duration::from_secs(1), start + ms(1100), start + ms(3000));
        schedule.cycle_done(start + ms(3100));
        assert!(schedule.may_reload(start + ms(3100)));
    }

    #[test]
    fn an_overrun_starts_the_next_cycle_at_once_and_a_new_interval_counts_from_the_last() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut schedule = Schedule::new(start, Duration::from_secs(1));
        schedule.cycle_done(start + ms(2500));
        assert_eq!(schedule.next, start + ms(2500));
        schedule.cycle_done(start + ms(2600));
        schedule.reloaded(Duration::from_secs(5), start + ms(2600), start + ms(2700));
        assert_eq!(schedule.next, start + ms(7500));
    }
}
