//! `goroscope agent`: runs until stopped, collects continuously and serves everything it sees
//! as Prometheus metrics. The main thread collects; an HTTP thread serves the latest
//! collection. SIGHUP reloads the config file: a valid one takes effect at the next cycle
//! without resetting any counter, an invalid one is refused, logged and counted.

pub mod collection;
pub mod config;
mod kernel;
pub mod ledger;
pub mod owners;
pub mod probe;
pub mod self_metrics;
pub mod series;
pub mod server;
pub mod shared;
pub mod sources;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::agent::collection::Collection;
use crate::agent::config::AgentConfig;
use crate::agent::server::Server;
use crate::agent::shared::Shared;
use crate::cli::AgentArgs;
use crate::settings::{require_privileges, UsageError};

/// Runs the agent (or, with --check, validates its config).
pub fn run(args: &AgentArgs) -> anyhow::Result<()> {
    let config = load(args)?;
    if args.check {
        println!(
            "goroscope: {}: valid; would serve on {} and collect every {}",
            config_name(args),
            config.listen,
            humantime::format_duration(config.interval)
        );
        return Ok(());
    }
    require_privileges(std::path::Path::new("/proc"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .with_context(|| format!("installing a handler for signal {signal}"))?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .context("installing a handler for SIGHUP")?;

    goroscope_bpf::init();
    let shared = Arc::new(Shared::new(stale_after(config.interval)));
    let server = Server::start(config.listen, Arc::clone(&shared))?;
    let mut collection = Collection::start(config)?;
    // Tests and scripts wait for "goroscope: attached"; the address is what a scraper needs.
    eprintln!(
        "goroscope: attached (agent): serving http://{}/metrics (also /healthz, /readyz); {}; \
         collecting every {}",
        server.address(),
        collection.describe(),
        humantime::format_duration(collection.config().interval)
    );
    for (name, why) in collection.down_reasons() {
        eprintln!("goroscope: agent: {name} is down: {why}");
    }
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        shared.publish(collection.cycle());
        release_freed_memory();
        next += collection.config().interval;
        let now = Instant::now();
        if next < now {
            next = now; // a cycle overran: start the next one at once rather than bunching up
        }
        // Wait in short steps so signals are answered quickly.
        while !stop.load(Ordering::Relaxed) && !reload.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next {
                break;
            }
            collection.wait(next.min(now + std::time::Duration::from_millis(200)));
        }
        if reload.swap(false, Ordering::Relaxed) {
            reload_config(args, &mut collection);
            shared.set_stale_after(stale_after(collection.config().interval));
        }
    }
    eprintln!("goroscope: agent stopping: detaching probes");
    drop(collection);
    server.stop()
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
    let mut config = match &args.config {
        Some(path) => AgentConfig::load(path).map_err(|error| UsageError(error.to_string()))?,
        None => AgentConfig::defaults(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    Ok(config)
}

fn config_name(args: &AgentArgs) -> String {
    args.config.as_ref().map_or_else(
        || "built-in defaults".to_owned(),
        |p| p.display().to_string(),
    )
}

/// SIGHUP: a valid file takes effect; an invalid one leaves the running config in place.
fn reload_config(args: &AgentArgs, collection: &mut Collection) {
    let Some(path) = &args.config else {
        eprintln!("goroscope: agent: SIGHUP ignored: no --config file to reload");
        return;
    };
    match load(args).and_then(|config| collection.reload(config)) {
        Ok(not_applied) => {
            collection.count_reload(true);
            eprintln!("goroscope: agent: reloaded {}", path.display());
            for sentence in not_applied {
                eprintln!("goroscope: agent: not applied until restart: {sentence}");
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
