//! Goroutine health: snapshots of a Go process's runtime (read elsewhere) and the analysis built
//! on them: counts by state and wait reason, lifetimes, groups by creation site, leak suspects, GC
//! and scheduler summaries.

mod groups;
pub mod health;
pub mod health_report;
mod leaks;
mod lifetimes;
mod names;
mod quantiles;
pub mod snapshot;
mod symbols;
mod trend;

#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod health_tests_more;

pub use health::{HealthSettings, HealthTracker};
pub use health_report::{
    GcSummary, GoroutineGroup, HealthReport, LeakSuspect, LifetimeSummary, ReadCost,
    SchedulerSummary, WindowSummary,
};
pub use names::GoroutineNames;
pub use snapshot::{
    Activity, CodeLocation, GcState, GoroutineRecord, GoroutineSnapshot, GoroutineState,
    SchedulerState, Symbolizer, STATUS_SCAN_BIT,
};
