//! goroscope's pure data model: latency histograms, syscall/errno/signal
//! names, open(2) flag formatting, aggregated syscall statistics, views
//! of kernel events, and the one escaping rule for printing names and paths.
//!
//! Nothing here depends on BPF or on the running system, so it can be unit
//! tested anywhere.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod errno_names;
pub mod event;
pub mod exit_status;
pub mod goroutines;
pub mod histogram;
pub mod open_flags;
pub mod profile;
pub mod recording;
pub mod sched_stats;
pub mod syscall_names;
pub mod syscall_stats;
pub mod tcp_stats;
pub mod text;

pub use errno_names::{errno_name, errno_number};
pub use event::{until_nul, Event, EventDetail, EventHeader, EventKind};
pub use exit_status::{signal_name, ExitStatus};
pub use histogram::{
    bucket_index, bucket_lower_bound_ns, bucket_upper_bound_ns, LatencyHistogram, LATENCY_BUCKETS,
};
pub use open_flags::write_open_flags;
pub use syscall_names::{syscall_name, syscall_number};
pub use syscall_stats::{sort_by_total_time, SyscallRow};
pub use text::{
    base64, base64_if_not_utf8, escape, escape_controls, escaped, escaped_quoted, unescape, Escaped,
};
