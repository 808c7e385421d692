//! The agent's OTLP export (`exporters.otlp`): every `interval`, the latest collection as OTLP
//! metrics (one resource per process, one for the host, one for goroscope) and the leak
//! suspects that are news as OTLP log records, handed to the exporter of `goroscope-otlp`,
//! which sends them on its own thread behind a bounded queue. Nothing here waits on the
//! network: a slow or dead Collector costs collection and scraping nothing.
//!
//! The exporter's counts are kept across reloads and served as `goroscope_export_*`.

mod leaks;
mod profiles;
mod resources;
mod stats;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use goroscope_export::otlp::{
    logs_request, metrics_request, profiles_request, LeakEvent, ResourceLeakEvents,
    ResourceProfiles,
};
use goroscope_export::Exposition;
use goroscope_otlp::ExportStats;
use goroscope_otlp::{Batch, Exporter, Signal};

use crate::agent::collection::Collection;
use crate::agent::config::OtlpExport;
use crate::agent::sources::go::GoSource;
use leaks::LeakWatch;
use profiles::{ContinuousProfiles, Schedule};
use resources::Resources;

/// How long a stopping agent waits for queued requests to be delivered.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// The OTLP export: the exporter and what is kept between exports.
pub struct OtlpSink {
    exporter: Option<Exporter>,
    profiles: Option<ContinuousProfiles>,
    /// Whether OTLP was ever on (its counts are served from then on).
    ever_on: bool,
    stats: Arc<ExportStats>,
    resources: Option<Resources>,
    leaks: LeakWatch,
    /// When counting began (the start of every cumulative point), Unix ns.
    started_unix_ns: u64,
    next_export: Instant,
    /// Series left out by `limits.max_series_per_family`, summed over exports.
    series_capped: u64,
    /// Last values of ended processes not kept for an export (the collection's count).
    departed_lost: u64,
}

impl Default for OtlpSink {
    fn default() -> Self {
        OtlpSink {
            exporter: None,
            profiles: None,
            ever_on: false,
            stats: Arc::new(ExportStats::new()),
            resources: None,
            leaks: LeakWatch::default(),
            started_unix_ns: unix_ns(SystemTime::now()),
            next_export: Instant::now(),
            series_capped: 0,
            departed_lost: 0,
        }
    }
}

impl OtlpSink {
    /// Applies `config` (None: no OTLP export): starts, reconfigures or stops the exporter and
    /// the continuous profiles. The queue and the counts survive a change of settings.
    pub fn configure(&mut self, config: Option<&OtlpExport>) -> anyhow::Result<()> {
        let Some(config) = config else {
            self.shutdown();
            return Ok(());
        };
        match self.exporter.as_mut() {
            Some(exporter) => {
                if exporter.config() != &config.exporter {
                    exporter
                        .reconfigure(config.exporter.clone())
                        .context("applying exporters.otlp")?;
                }
            }
            None => {
                let exporter = Exporter::start(config.exporter.clone(), Arc::clone(&self.stats))
                    .context("starting the OTLP exporter (exporters.otlp)")?;
                self.exporter = Some(exporter);
                self.ever_on = true;
                self.next_export = Instant::now();
            }
        }
        let schedule = config
            .profiles
            .filter(|_| config.exporter.endpoint(Signal::Profiles).is_some())
            .map(|p| Schedule {
                every: p.every,
                duration: p.duration,
            });
        if self.profiles.as_ref().map(ContinuousProfiles::schedule) != schedule {
            self.profiles = None;
            if let Some(schedule) = schedule {
                let profiles = ContinuousProfiles::start(schedule, Path::new("/proc"))
                    .context("starting the continuous profiles thread (exporters.otlp.profiles)")?;
                self.profiles = Some(profiles);
            }
        }
        Ok(())
    }

    /// Where metrics go, for the start-up line.
    pub fn describe(&self) -> Option<String> {
        let exporter = self.exporter.as_ref()?;
        let config = exporter.config();
        let signals: Vec<&str> = Signal::ALL
            .into_iter()
            .filter(|s| config.endpoint(*s).is_some())
            .map(Signal::name)
            .collect();
        let to = Signal::ALL
            .into_iter()
            .find_map(|s| config.endpoint(s))
            .map_or_else(String::new, ToString::to_string);
        Some(format!(
            "exporting OTLP ({}; {}) to {to} every {}",
            config.protocol.name(),
            signals.join(", "),
            humantime::format_duration(config.interval)
        ))
    }

    /// After a collection: when an export is due, queues the collection's metrics and the leak
    /// suspects that are news.
    pub fn after_cycle(&mut self, collection: &mut Collection) {
        // Departed rows wait for a metrics export; without one they would only pile up.
        collection.keep_departed(
            self.exporter
                .as_ref()
                .is_some_and(|e| e.config().endpoint(Signal::Metrics).is_some()),
        );
        let Some(exporter) = self.exporter.as_ref() else {
            return;
        };
        if exporter.config().endpoint(Signal::Metrics).is_some() {
            collection.mark_exported();
        }
        let now = Instant::now();
        if now < self.next_export {
            return;
        }
        let interval = exporter.config().interval;
        // Keep the cadence, but never queue a burst to catch up.
        self.next_export = (self.next_export + interval).max(now + interval / 2);
        let procfs = collection.procfs();
        // Held apart from `self` while this export is built (put back at the end).
        let mut resources = self
            .resources
            .take()
            .unwrap_or_else(|| Resources::new(procfs));
        let now_unix_ns = unix_ns(SystemTime::now());
        let mut metrics_sent = false;
        if exporter.config().endpoint(Signal::Metrics).is_some() {
            let (sources, mut agent, capped) = collection.otlp_exposition();
            self.series_capped += capped;
            self.departed_lost = collection.departed_lost();
            self.export_families(&mut agent);
            let grouped = resources.group(procfs, collection.go(), &sources, &agent);
            let request = metrics_request(
                &grouped.as_resource_families(),
                self.started_unix_ns,
                now_unix_ns,
            );
            exporter.send(Batch::Metrics(request));
            metrics_sent = true;
        }
        if exporter.config().endpoint(Signal::Logs).is_some() {
            if let Some(go) = collection.go() {
                let news = self.leaks.news(go.reports());
                if !news.is_empty() {
                    let events: Vec<(u32, LeakEvent<'_>)> = news
                        .iter()
                        .map(|item| {
                            let event = LeakEvent {
                                suspect: item.suspect,
                                change: item.change,
                                time_unix_ns: now_unix_ns,
                            };
                            (item.pid, event)
                        })
                        .collect();
                    let grouped = group_by_pid(events);
                    let per_resource: Vec<_> = grouped
                        .iter()
                        .map(|(pid, events)| ResourceLeakEvents {
                            attributes: resources.process(
                                procfs,
                                Some(go),
                                *pid,
                                comm(procfs, *pid),
                            ),
                            events,
                        })
                        .collect();
                    exporter.send(Batch::Logs(logs_request(&per_resource)));
                }
            }
        }
        if let Some(profiles) = &self.profiles {
            profiles.set_targets(
                collection
                    .go()
                    .map(GoSource::watched_pids)
                    .unwrap_or_default(),
            );
            let finished = group_by_pid(profiles.finished());
            if !finished.is_empty() {
                let per_resource: Vec<_> = finished
                    .iter()
                    .map(|(pid, profiles)| ResourceProfiles {
                        attributes: resources.process(
                            procfs,
                            collection.go(),
                            *pid,
                            comm(procfs, *pid),
                        ),
                        profiles,
                    })
                    .collect();
                exporter.send(Batch::Profiles(profiles_request(&per_resource)));
            }
        }
        self.resources = Some(resources);
        if metrics_sent {
            // The last values of processes that ended are in this export: they can go.
            collection.clear_departed();
        }
    }

    /// The exporter's counts as `goroscope_export_*` families (once OTLP was on).
    pub fn families(&self, out: &mut Exposition) {
        if self.ever_on {
            self.export_families(out);
        }
    }

    /// The `goroscope_export_*` families as they stand.
    fn export_families(&self, out: &mut Exposition) {
        let lost = self.profiles.as_ref().map_or(0, ContinuousProfiles::lost);
        let dropped = self.series_capped + self.departed_lost;
        stats::families(&self.stats.snapshot(), dropped, lost, out);
    }

    /// Stops: what is queued gets a few seconds to be delivered.
    pub fn shutdown(&mut self) {
        self.profiles = None;
        if let Some(exporter) = self.exporter.take() {
            exporter.shutdown(SHUTDOWN_DEADLINE);
        }
    }
}

/// The current name of process `pid` ("" once it is gone).
fn comm(procfs: &goroscope_host::ProcFs, pid: u32) -> String {
    procfs
        .process(pid)
        .map(|info| info.comm)
        .unwrap_or_default()
}

/// Items grouped by process, in the order processes first appear.
fn group_by_pid<T>(items: Vec<(u32, T)>) -> Vec<(u32, Vec<T>)> {
    let mut grouped: Vec<(u32, Vec<T>)> = Vec::new();
    for (pid, item) in items {
        match grouped.iter_mut().find(|(p, _)| *p == pid) {
            Some((_, group)) => group.push(item),
            None => grouped.push((pid, vec![item])),
        }
    }
    grouped
}

/// `at` in nanoseconds since the Unix epoch.
fn unix_ns(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
