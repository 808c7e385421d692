//! Which processes a run looks at: all, some PIDs, or those with a given
//! name. The BPF side checks it before doing any work.

use libbpf_rs::{MapCore, MapFlags};

use crate::error::BpfError;

/// The kernel's comm field length, NUL included.
pub const COMM_LEN: usize = 16;

/// Processes to look at; empty means the whole host (goroscope excepted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessFilter {
    /// Only these process ids, when not empty.
    pub pids: Vec<u32>,
    /// Only processes with this name (the kernel keeps the first 15 bytes).
    pub comm: Option<String>,
    /// Also look at goroscope itself (for self-tests); normally it is skipped.
    pub include_self: bool,
}

impl ProcessFilter {
    /// The comm as the kernel stores it: at most 15 bytes, NUL-padded.
    pub fn comm_field(&self) -> [i8; COMM_LEN] {
        let mut field = [0i8; COMM_LEN];
        if let Some(comm) = &self.comm {
            for (dst, &src) in field
                .iter_mut()
                .zip(comm.as_bytes().iter().take(COMM_LEN - 1))
            {
                *dst = src as i8;
            }
        }
        field
    }

    /// Whether the kernel side selects process `pid` named `comm` (as `/proc/PID/comm` gives
    /// it), as `is_traced` in bpf/common.h decides: for user-space work on the same processes,
    /// such as seeding the TCP collector's listeners.
    pub fn selects(&self, pid: u32, comm: &str) -> bool {
        if pid == std::process::id() && !self.include_self {
            return false;
        }
        if !self.pids.is_empty() && !self.pids.contains(&pid) {
            return false;
        }
        match &self.comm {
            Some(want) => {
                let cut = |s: &str| -> Vec<u8> { s.bytes().take(COMM_LEN - 1).collect() };
                cut(want) == cut(comm)
            }
            None => true,
        }
    }
}

/// Writes the filter into an opened (not yet loaded) skeleton's read-only data.
macro_rules! configure_filter {
    ($open:expr, $object:expr, $filter:expr) => {{
        let rodata = $open
            .maps
            .rodata_data
            .as_deref_mut()
            .ok_or($crate::error::BpfError::MissingRodata { object: $object })?;
        rodata.self_tgid = if $filter.include_self {
            0 // no process has tgid 0
        } else {
            std::process::id()
        };
        rodata.filter_by_pid = !$filter.pids.is_empty();
        rodata.filter_by_comm = $filter.comm.is_some();
        rodata.target_comm = $filter.comm_field();
        rodata
    }};
}
pub(crate) use configure_filter;

/// Fills a loaded object's `target_pids` map.
pub(crate) fn fill_target_pids(map: &dyn MapCore, pids: &[u32]) -> Result<(), BpfError> {
    for pid in pids {
        map.update(&pid.to_ne_bytes(), &[1u8], MapFlags::ANY)
            .map_err(|source| BpfError::Map {
                map: "target_pids",
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_as_the_kernel_does() {
        let me = std::process::id();
        let host = ProcessFilter::default();
        assert!(host.selects(1, "init"));
        assert!(
            !host.selects(me, "goroscope"),
            "goroscope itself is skipped"
        );
        let with_self = ProcessFilter {
            include_self: true,
            ..ProcessFilter::default()
        };
        assert!(with_self.selects(me, "goroscope"));
        let pids = ProcessFilter {
            pids: vec![5, 7],
            ..ProcessFilter::default()
        };
        assert!(pids.selects(7, "x") && !pids.selects(6, "x"));
        let named = ProcessFilter {
            comm: Some("a-very-long-process-name".into()),
            ..ProcessFilter::default()
        };
        assert!(named.selects(9, "a-very-long-pro"), "compared on 15 bytes");
        assert!(!named.selects(9, "a-very-long"));
        assert!(!named.selects(9, "other"));
    }

    #[test]
    fn comm_is_truncated_to_fifteen_bytes_and_nul_padded() {
        let f = ProcessFilter {
            comm: Some("a-very-long-process-name".into()),
            ..ProcessFilter::default()
        };
        let field = f.comm_field();
        let expected: Vec<i8> = b"a-very-long-pro".iter().map(|&b| b as i8).collect();
        assert_eq!(&field[..15], expected.as_slice());
        assert_eq!(field[15], 0);
        let short = ProcessFilter {
            comm: Some("dd".into()),
            ..ProcessFilter::default()
        };
        assert_eq!(&short.comm_field()[..3], &[b'd' as i8, b'd' as i8, 0]);
    }
}
