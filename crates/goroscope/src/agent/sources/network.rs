//! Network interfaces: packets, bytes, drops and errors received and sent, from the kernel's
//! own per-device counters (`/sys/class/net/*/statistics`). The kernel already aggregates
//! these for every packet, so reading them costs nothing per packet and is exact.

use goroscope_export::{Exposition, Family, Labels};
use goroscope_host::{InterfaceStats, SysFs};

use crate::agent::owners::Owners;
use crate::agent::probe::Source;

/// The network interface reader.
pub struct NetworkSource {
    sysfs: SysFs,
    latest: Vec<InterfaceStats>,
}

/// The kernel's counters are absolute: nothing to keep while the collector is off.
impl Source for NetworkSource {
    type Kept = ();

    fn park(self, _owners: &mut Owners) {}
}

impl NetworkSource {
    /// Reads interfaces under `sysfs`.
    pub fn new(sysfs: SysFs) -> Self {
        Self {
            sysfs,
            latest: Vec::new(),
        }
    }

    /// Reads every interface `keep` accepts.
    pub fn collect(&mut self, keep: impl Fn(&str) -> bool) -> anyhow::Result<()> {
        let mut interfaces = self.sysfs.interfaces()?;
        interfaces.retain(|i| keep(&i.name));
        self.latest = interfaces;
        Ok(())
    }

    /// Adds the interface families.
    pub fn families(&self, out: &mut Exposition) {
        let mut packets = Family::counter(
            "goroscope_network_packets_total",
            "Packets received and transmitted per network interface.",
        );
        let mut bytes = Family::counter(
            "goroscope_network_bytes_total",
            "Bytes received and transmitted per network interface.",
        );
        let mut dropped = Family::counter(
            "goroscope_network_dropped_packets_total",
            "Packets dropped per network interface and direction.",
        );
        let mut errors = Family::counter(
            "goroscope_network_errors_total",
            "Receive and transmit errors per network interface.",
        );
        for i in &self.latest {
            let labels = |direction: &str| {
                Labels::new()
                    .push("interface", i.name.clone())
                    .push("direction", direction.to_owned())
            };
            packets.add_counter(labels("receive"), i.rx_packets as f64);
            packets.add_counter(labels("transmit"), i.tx_packets as f64);
            bytes.add_counter(labels("receive"), i.rx_bytes as f64);
            bytes.add_counter(labels("transmit"), i.tx_bytes as f64);
            dropped.add_counter(labels("receive"), i.rx_dropped as f64);
            dropped.add_counter(labels("transmit"), i.tx_dropped as f64);
            errors.add_counter(labels("receive"), i.rx_errors as f64);
            errors.add_counter(labels("transmit"), i.tx_errors as f64);
        }
        for family in [packets, bytes, dropped, errors] {
            out.push(family);
        }
    }
}
