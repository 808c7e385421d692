//! Network interface counters: the kernel's own per-device totals under
//! `<sysfs>/class/net/<interface>/statistics/`.

use std::path::{Path, PathBuf};

use crate::error::{HostError, Result};
use crate::fsread::{is_gone, parse_u64, read_small};

/// A sysfs mount (normally `/sys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysFs {
    root: PathBuf,
}

/// The kernel's counters of one network interface since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    /// Interface name, e.g. `eth0`, `lo`.
    pub name: String,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Received packets dropped (no buffer space, unknown protocol, ...).
    pub rx_dropped: u64,
    /// Packets dropped before sending.
    pub tx_dropped: u64,
    /// Receive errors (bad CRC, frame or length errors, ...).
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
}

/// The counter files read, in the order of [`InterfaceStats`]'s fields.
const COUNTERS: [&str; 8] = [
    "rx_packets",
    "tx_packets",
    "rx_bytes",
    "tx_bytes",
    "rx_dropped",
    "tx_dropped",
    "rx_errors",
    "tx_errors",
];

impl SysFs {
    /// A sysfs mounted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> SysFs {
        SysFs { root: root.into() }
    }

    /// The host's sysfs, `/sys`.
    pub fn host() -> SysFs {
        SysFs::new("/sys")
    }

    /// Where this sysfs is mounted.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The counters of every network interface in this network namespace, sorted by name. An
    /// interface removed while it is being read is left out.
    pub fn interfaces(&self) -> Result<Vec<InterfaceStats>> {
        let class = self.root.join("class").join("net");
        let entries = std::fs::read_dir(&class).map_err(|source| HostError::ReadDir {
            path: class.clone(),
            source,
        })?;
        let mut interfaces = Vec::new();
        for entry in entries {
            // An entry that cannot be read is an interface that went away during the listing.
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stats) = read_interface(&entry.path(), name)? {
                interfaces.push(stats);
            }
        }
        interfaces.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(interfaces)
    }
}

/// Reads the counters of the interface whose directory is `dir`; `None` when it vanished.
fn read_interface(dir: &Path, name: String) -> Result<Option<InterfaceStats>> {
    let statistics = dir.join("statistics");
    let mut values = [0u64; COUNTERS.len()];
    let mut buf = [0u8; 32];
    for (value, counter) in values.iter_mut().zip(COUNTERS) {
        let path = statistics.join(counter);
        let bytes = match read_small(&path, &mut buf) {
            Ok(bytes) => bytes,
            Err(source) if is_gone(&source) && !dir.exists() => return Ok(None),
            // Reading the counters of a device being unregistered fails with ENODEV.
            Err(source) if source.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(source) => return Err(HostError::Read { path, source }),
        };
        *value = parse_u64(bytes).ok_or_else(|| HostError::Parse {
            path: path.clone(),
            reason: format!(
                "expected a counter, found {:?}",
                String::from_utf8_lossy(bytes)
            ),
        })?;
    }
    let [rx_packets, tx_packets, rx_bytes, tx_bytes, rx_dropped, tx_dropped, rx_errors, tx_errors] =
        values;
    Ok(Some(InterfaceStats {
        name,
        rx_packets,
        tx_packets,
        rx_bytes,
        tx_bytes,
        rx_dropped,
        tx_dropped,
        rx_errors,
        tx_errors,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfs::FakeTree;

    fn fake_interface(tree: &FakeTree, name: &str, base: u64) {
        for (index, counter) in COUNTERS.iter().enumerate() {
            tree.write(
                &format!("devices/virtual/net/{name}/statistics/{counter}"),
                &format!("{}\n", base + index as u64),
            );
        }
        tree.symlink(
            &format!("class/net/{name}"),
            &tree.path().join(format!("devices/virtual/net/{name}")),
        );
    }

    #[test]
    fn reads_every_counter_of_every_interface() {
        let tree = FakeTree::new("net-read");
        fake_interface(&tree, "lo", 100);
        fake_interface(&tree, "eth0", 200);
        let interfaces = SysFs::new(tree.path()).interfaces().unwrap();
        assert_eq!(
            interfaces,
            vec![
                InterfaceStats {
                    name: "eth0".into(),
                    rx_packets: 200,
                    tx_packets: 201,
                    rx_bytes: 202,
                    tx_bytes: 203,
                    rx_dropped: 204,
                    tx_dropped: 205,
                    rx_errors: 206,
                    tx_errors: 207,
                },
                InterfaceStats {
                    name: "lo".into(),
                    rx_packets: 100,
                    tx_packets: 101,
                    rx_bytes: 102,
                    tx_bytes: 103,
                    rx_dropped: 104,
                    tx_dropped: 105,
                    rx_errors: 106,
                    tx_errors: 107,
                },
            ]
        );
    }

    #[test]
    fn a_vanished_interface_is_skipped() {
        let tree = FakeTree::new("net-vanished");
        fake_interface(&tree, "lo", 1);
        fake_interface(&tree, "veth1", 1);
        // The link is still listed but its device is gone, as when the interface is deleted
        // between the listing and the reads.
        tree.remove(&["devices/virtual/net/veth1"]);
        let interfaces = SysFs::new(tree.path()).interfaces().unwrap();
        let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo"]);
    }

    #[test]
    fn a_missing_counter_of_a_present_interface_is_an_error() {
        let tree = FakeTree::new("net-missing-counter");
        fake_interface(&tree, "eth0", 1);
        tree.remove(&["devices/virtual/net/eth0/statistics/tx_errors"]);
        match SysFs::new(tree.path()).interfaces() {
            Err(HostError::Read { path, .. }) => assert!(path.ends_with("statistics/tx_errors")),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn a_malformed_counter_is_a_parse_error() {
        let tree = FakeTree::new("net-bad-counter");
        fake_interface(&tree, "eth0", 1);
        tree.write("devices/virtual/net/eth0/statistics/rx_bytes", "lots\n");
        assert!(matches!(
            SysFs::new(tree.path()).interfaces(),
            Err(HostError::Parse { .. })
        ));
    }

    #[test]
    fn no_sysfs_is_a_read_dir_error() {
        let tree = FakeTree::new("net-no-sysfs");
        assert!(matches!(
            SysFs::new(tree.path()).interfaces(),
            Err(HostError::ReadDir { .. })
        ));
    }
}
