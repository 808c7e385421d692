//! Data lost in the kernel, per reason, summed over CPUs (see `enum
//! loss_reason` in bpf/common.h).

use libbpf_rs::{MapCore, MapFlags};

use crate::error::BpfError;

/// The reasons, in the kernel's index order.
pub const LOSS_REASONS: [&str; 20] = [
    "exec events: ring buffer full",
    "exit events: ring buffer full",
    "fork events: ring buffer full",
    "open events: ring buffer full",
    "syscall statistics: map full",
    "syscall errors: map full",
    "per-thread storage unavailable",
    "scheduler statistics: map full",
    "scheduler: per-thread storage unavailable",
    "TCP statistics: map full",
    "TCP endpoints: map full",
    "TCP connections: map full",
    "syscall thread slots busy",
    "CPU samples: user stack not stored",
    "CPU samples: kernel stack not stored",
    "CPU samples: map full",
    "off-CPU time: user stack not stored",
    "off-CPU time: kernel stack not stored",
    "off-CPU time: map full",
    "off-CPU time: per-thread state unavailable",
];

/// Kernel-side loss counters of one or more objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// Count per reason, indexed like [`LOSS_REASONS`].
    pub counts: [u64; LOSS_REASONS.len()],
}

impl Losses {
    /// Reads an object's `losses` per-CPU array.
    pub(crate) fn read(map: &dyn MapCore) -> Result<Self, BpfError> {
        let mut losses = Self::default();
        for (i, slot) in losses.counts.iter_mut().enumerate() {
            let key = (i as u32).to_ne_bytes();
            let per_cpu = map
                .lookup_percpu(&key, MapFlags::ANY)
                .map_err(|source| BpfError::Map {
                    map: "losses",
                    source,
                })?
                .unwrap_or_default();
            for value in per_cpu {
                let bytes: [u8; 8] = value
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .unwrap_or([0; 8]);
                *slot = slot.saturating_add(u64::from_ne_bytes(bytes));
            }
        }
        Ok(losses)
    }

    /// Adds another object's counters.
    pub fn add(&mut self, other: &Losses) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a = a.saturating_add(b);
        }
    }

    /// Total lost, all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, &b| a.saturating_add(b))
    }

    /// (reason, count) for every reason with a non-zero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        LOSS_REASONS
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (*r, n))
    }
}
