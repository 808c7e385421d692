//! Which OpenTelemetry resource each exported series belongs to: a process's series go under
//! that process (its `service.name`, `process.*`, `container.id`, pod uid: see
//! `goroscope_host::resource`), series of no process under the host, and goroscope's own under
//! goroscope's process. The process labels a series carried in Prometheus (`pid`, `comm`,
//! `cgroup`, `container_id`, and the Go families' `service` and `executable`) become the
//! resource and are dropped from the points. Processes that started and ended between two
//! exports come folded per owner (comm, cgroup, container) with an empty `pid`: they go under
//! the host, keeping those labels.
//!
//! A process's attributes are read from `/proc` once and kept while the process lives under
//! the same name; an exec (a new `comm`) or a new process with the pid reads them again.

use std::collections::{BTreeMap, HashMap};

use goroscope_export::otlp::proto::common::KeyValue;
use goroscope_export::otlp::{int_attribute, string_attribute, ResourceFamilies};
use goroscope_export::{Exposition, Family, Labels};
use goroscope_host::resource::{host_arch, process_resource, GoIdentity};
use goroscope_host::ProcFs;

use crate::agent::sources::go::GoSource;

/// Labels that say which process a series is, and become its resource.
const PROCESS_LABELS: &[&str] = &[
    "pid",
    "comm",
    "cgroup",
    "container_id",
    "service",
    "executable",
];

/// Who a series belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    /// A process, by pid and name: the rows a process counted before an exec carry its old
    /// name, and are the old program's, a resource of their own.
    Process(u32, String),
    /// The host (series of no one process).
    Host,
}

/// The resources of the host, of goroscope and of every process exported, kept between
/// exports.
pub struct Resources {
    host_name: String,
    host: Vec<KeyValue>,
    agent: Vec<KeyValue>,
    /// Per (pid, comm).
    processes: HashMap<(u32, String), Vec<KeyValue>>,
}

/// One export's resources and the families under each.
pub struct Grouped {
    resources: Vec<(Vec<KeyValue>, Vec<Family>)>,
}

impl Grouped {
    /// As the OTLP encoder takes them.
    pub fn as_resource_families(&self) -> Vec<ResourceFamilies<'_>> {
        self.resources
            .iter()
            .map(|(attributes, families)| ResourceFamilies {
                attributes: attributes.clone(),
                families,
            })
            .collect()
    }
}

impl Resources {
    /// The host's and goroscope's own resources, read once.
    pub fn new(procfs: &ProcFs) -> Resources {
        let host_name = std::fs::read_to_string(procfs.root().join("sys/kernel/hostname"))
            .map(|name| name.trim().to_owned())
            .unwrap_or_default();
        let host = host_attributes(&host_name);
        let own = std::process::id();
        let mut agent = attributes(
            process_resource(procfs, own, GoIdentity::default(), &host_name).unwrap_or_default(),
        );
        if !agent.iter().any(|kv| kv.key == "service.name") {
            agent.insert(0, string_attribute("service.name", "goroscope"));
        }
        agent.push(string_attribute(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ));
        Resources {
            host_name,
            host,
            agent,
            processes: HashMap::new(),
        }
    }

    /// Splits one collection's `sources` (per-process series, see
    /// `Collection::otlp_exposition`) by process, and adds goroscope's own families under its
    /// resource. Processes no longer exported are forgotten.
    pub fn group(
        &mut self,
        procfs: &ProcFs,
        go: Option<&GoSource>,
        sources: &Exposition,
        agent: &Exposition,
    ) -> Grouped {
        let mut by_owner: BTreeMap<Owner, Vec<Family>> = BTreeMap::new();
        for family in sources.families() {
            let parts = family.partition(|labels| match owner_of(labels) {
                owner @ Owner::Process(..) => (owner, PROCESS_LABELS),
                // A series of no one process keeps the labels that name what it can; the
                // empty pid of processes folded per owner (see the ledger) names nothing.
                Owner::Host => (Owner::Host, &["pid"]),
            });
            for (owner, part) in parts {
                by_owner.entry(owner).or_default().push(part);
            }
        }
        self.processes
            .retain(|(pid, comm), _| by_owner.contains_key(&Owner::Process(*pid, comm.clone())));
        let mut resources = Vec::with_capacity(by_owner.len() + 1);
        if !agent.families().is_empty() {
            resources.push((self.agent.clone(), agent.families().to_vec()));
        }
        for (owner, families) in by_owner {
            let attributes = match owner {
                Owner::Host => self.host.clone(),
                Owner::Process(pid, comm) => self.process(procfs, go, pid, comm),
            };
            resources.push((attributes, families));
        }
        Grouped { resources }
    }

    /// The resource of process `pid` while it runs as `comm`: read from `/proc` when that is
    /// what it runs now, else (it ended, or exec'd since) what the series said of it.
    pub fn process(
        &mut self,
        procfs: &ProcFs,
        go: Option<&GoSource>,
        pid: u32,
        comm: String,
    ) -> Vec<KeyValue> {
        let key = (pid, comm);
        if let Some(known) = self.processes.get(&key) {
            return known.clone();
        }
        let identity = go.and_then(|go| go.identity(pid));
        let go_identity = GoIdentity {
            main_module: identity.map(|(program, _)| program.service.as_str()),
            go_version: identity.map(|(_, version)| version),
        };
        let (pid, comm) = &key;
        let now = procfs.process(*pid).ok().filter(|info| info.comm == *comm);
        let read =
            now.and_then(|_| process_resource(procfs, *pid, go_identity, &self.host_name).ok());
        let attributes = match read {
            Some(read) => attributes(read),
            None => {
                let mut gone = vec![
                    string_attribute("service.name", comm),
                    int_attribute("process.pid", i64::from(*pid)),
                    string_attribute("process.executable.name", comm),
                ];
                gone.extend(host_attributes(&self.host_name));
                gone
            }
        };
        self.processes.insert(key, attributes.clone());
        attributes
    }
}

/// Who a series with `labels` belongs to: the process its `pid` label names, else the host.
fn owner_of(labels: &Labels) -> Owner {
    match labels.get("pid").and_then(|pid| pid.parse().ok()) {
        Some(pid) => Owner::Process(pid, labels.get("comm").unwrap_or_default().to_owned()),
        None => Owner::Host,
    }
}

/// Attributes as read from `/proc`, `process.pid` as an integer.
fn attributes(read: Vec<(String, String)>) -> Vec<KeyValue> {
    read.into_iter()
        .map(|(key, value)| match (key.as_str(), value.parse::<i64>()) {
            ("process.pid", Ok(pid)) => int_attribute(&key, pid),
            _ => string_attribute(&key, &value),
        })
        .collect()
}

/// The host's own attributes.
fn host_attributes(host_name: &str) -> Vec<KeyValue> {
    let mut host = Vec::with_capacity(3);
    if !host_name.is_empty() {
        host.push(string_attribute("host.name", host_name));
    }
    host.push(string_attribute("host.arch", host_arch()));
    host.push(string_attribute("os.type", "linux"));
    host
}
