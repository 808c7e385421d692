//! The TCP ports a process is listening on, from `/proc`: the sockets in state LISTEN of its
//! network namespace (`/proc/PID/net/tcp` and `tcp6`) that are among its own file descriptors
//! (`/proc/PID/fd/*` → `socket:[INODE]`). The TCP collector learns listeners only from `listen()`
//! calls it sees; servers already listening when it starts are found here.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{HostError, Result};
use crate::fsread::is_gone;
use crate::procfs::ProcFs;

/// `TCP_LISTEN` as `/proc/net/tcp` prints the state (`st` column).
const LISTEN: &str = "0A";

/// A TCP port a process listens on, in one network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListeningSocket {
    /// The inode of the process's network namespace (`/proc/PID/ns/net` → `net:[INODE]`), as
    /// the kernel's `net->ns.inum`.
    pub netns: u32,
    /// The local port, host order.
    pub port: u16,
}

/// The TCP ports process `pid` listens on (IPv4 and IPv6; a port open in both once), sorted.
/// [`HostError::Gone`] when the process exited; [`HostError::Read`] when its files cannot be read
/// (another user's process without the privilege).
pub fn listening_sockets(procfs: &ProcFs, pid: u32) -> Result<Vec<ListeningSocket>> {
    ListenerScan::new(procfs).listening_sockets(pid)
}

/// [`listening_sockets`] for many processes, reading the LISTEN sockets of each network
/// namespace once (from the first process seen in it) rather than once per process.
#[derive(Debug)]
pub struct ListenerScan<'p> {
    procfs: &'p ProcFs,
    /// Per network namespace inode: the inode → port of its LISTEN sockets.
    tables: HashMap<u32, HashMap<u64, u16>>,
}

impl<'p> ListenerScan<'p> {
    /// A scan of processes under `procfs`, with no namespace read yet.
    pub fn new(procfs: &'p ProcFs) -> Self {
        Self {
            procfs,
            tables: HashMap::new(),
        }
    }

    /// The TCP ports process `pid` listens on, as [`listening_sockets`] returns them.
    pub fn listening_sockets(&mut self, pid: u32) -> Result<Vec<ListeningSocket>> {
        let dir = self.procfs.root().join(pid.to_string());
        let netns = self.netns(pid, &dir)?;
        let sockets = self.socket_fds(pid, &dir)?;
        if sockets.is_empty() {
            return Ok(Vec::new()); // no socket: no need to read the namespace's tables
        }
        let table = match self.tables.entry(netns) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let mut table = HashMap::new();
                for file in ["net/tcp", "net/tcp6"] {
                    read_listen_table(self.procfs, pid, &dir.join(file), &mut table)?;
                }
                entry.insert(table)
            }
        };
        let ports: BTreeSet<u16> = sockets
            .iter()
            .filter_map(|inode| table.get(inode).copied())
            .collect();
        Ok(ports
            .into_iter()
            .map(|port| ListeningSocket { netns, port })
            .collect())
    }

    /// The inode of `pid`'s network namespace.
    fn netns(&self, pid: u32, dir: &Path) -> Result<u32> {
        let path = dir.join("ns/net");
        let target =
            std::fs::read_link(&path).map_err(|e| read_error(self.procfs, pid, path.clone(), e))?;
        let text = target.to_string_lossy();
        text.strip_prefix("net:[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|inode| inode.parse().ok())
            .ok_or_else(|| HostError::Parse {
                path,
                reason: format!("the link points to {text:?}, not net:[INODE]"),
            })
    }

    /// The inodes of the sockets among `pid`'s file descriptors.
    fn socket_fds(&self, pid: u32, dir: &Path) -> Result<HashSet<u64>> {
        let path = dir.join("fd");
        let entries =
            std::fs::read_dir(&path).map_err(|e| read_error(self.procfs, pid, path.clone(), e))?;
        let mut inodes = HashSet::new();
        for entry in entries {
            // An fd closed while listing is no longer the process's.
            let Ok(entry) = entry else { continue };
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            if let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
            {
                inodes.insert(inode);
            }
        }
        Ok(inodes)
    }
}

/// Adds the LISTEN sockets of one `/proc/PID/net/tcp{,6}` file (inode → local port) to `table`.
/// A missing `tcp6` of a process that still exists (IPv6 disabled) adds nothing.
fn read_listen_table(
    procfs: &ProcFs,
    pid: u32,
    path: &Path,
    table: &mut HashMap<u64, u16>,
) -> Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && procfs.exists(pid) => return Ok(()),
        Err(e) => return Err(read_error(procfs, pid, path.to_path_buf(), e)),
    };
    let mut lines = BufReader::new(file).lines();
    // The first line is the header.
    if let Some(header) = lines.next() {
        header.map_err(|e| read_error(procfs, pid, path.to_path_buf(), e))?;
    }
    for line in lines {
        let line = line.map_err(|e| read_error(procfs, pid, path.to_path_buf(), e))?;
        if let Some((inode, port)) =
            parse_listen_line(&line).map_err(|reason| HostError::Parse {
                path: path.to_path_buf(),
                reason: format!("{reason} in line {line:?}"),
            })?
        {
            table.insert(inode, port);
        }
    }
    Ok(())
}

/// The (inode, local port) of a line of `/proc/net/tcp{,6}` whose socket is in LISTEN, `None`
/// for other states. Fields: `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout
/// inode …`, the local address being `HEXADDR:HEXPORT`.
fn parse_listen_line(line: &str) -> std::result::Result<Option<(u64, u16)>, &'static str> {
    let fields: Vec<&str> = line.split_ascii_whitespace().take(10).collect();
    let [_, local, _, state, _, _, _, _, _, inode] = fields[..] else {
        return Err("fewer than 10 fields");
    };
    if state != LISTEN {
        return Ok(None);
    }
    let port = local
        .rsplit_once(':')
        .and_then(|(_, port)| u16::from_str_radix(port, 16).ok())
        .ok_or("the local address has no hexadecimal port")?;
    let inode = inode.parse().map_err(|_| "the inode is not a number")?;
    Ok(Some((inode, port)))
}

/// A failed read of one of `pid`'s files: [`HostError::Gone`] when the process is gone.
fn read_error(procfs: &ProcFs, pid: u32, path: PathBuf, source: std::io::Error) -> HostError {
    if is_gone(&source) && !procfs.exists(pid) {
        HostError::Gone { pid }
    } else {
        HostError::Read { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfs::FakeTree;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
    const HEADER6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
    const NETNS: u32 = 4026531840;

    /// A line of `/proc/net/tcp` for a socket on 127.0.0.1:`port` in `state`.
    fn line4(port: u16, state: &str, inode: u64) -> String {
        format!("   0: 0100007F:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n")
    }

    /// A line of `/proc/net/tcp6` for a socket on [::]:`port` in `state`.
    fn line6(port: u16, state: &str, inode: u64) -> String {
        format!("   0: 00000000000000000000000000000000:{port:04X} 00000000000000000000000000000000:0000 {state} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n")
    }

    #[track_caller]
    fn fake_process(tree: &FakeTree, pid: u32, netns: u32, fds: &[&str], tcp: &str, tcp6: &str) {
        tree.symlink(
            &format!("{pid}/ns/net"),
            Path::new(&format!("net:[{netns}]")),
        );
        tree.mkdir(&format!("{pid}/fd"));
        for (fd, target) in fds.iter().enumerate() {
            tree.symlink(&format!("{pid}/fd/{fd}"), Path::new(target));
        }
        tree.write(&format!("{pid}/net/tcp"), &format!("{HEADER}{tcp}"));
        tree.write(&format!("{pid}/net/tcp6"), &format!("{HEADER6}{tcp6}"));
    }

    #[track_caller]
    fn ports(procfs: &ProcFs, pid: u32) -> Vec<u16> {
        let sockets = listening_sockets(procfs, pid)
            .unwrap_or_else(|e| panic!("listening sockets of {pid}: {e}"));
        for s in &sockets {
            assert_eq!(s.netns, NETNS, "{s:?}");
        }
        sockets.iter().map(|s| s.port).collect()
    }

    #[test]
    fn only_the_processs_own_listening_sockets() {
        let tree = FakeTree::new("listeners");
        // The namespace's tables: 8080 on v4 and v6 (inodes 100, 101), 9090 v6 only (102),
        // 22 of another process (200), an established connection (103) and a TIME_WAIT (104).
        let tcp = [
            line4(8080, "0A", 100),
            line4(22, "0A", 200),
            line4(40000, "01", 103),
            line4(40001, "06", 0),
        ]
        .concat();
        let tcp6 = [
            line6(8080, "0A", 101),
            line6(9090, "0A", 102),
            line6(7, "08", 104),
        ]
        .concat();
        fake_process(
            &tree,
            10,
            NETNS,
            &[
                "/dev/null",
                "socket:[100]",
                "socket:[101]",
                "socket:[102]",
                "socket:[103]",
                "socket:[104]",
                "pipe:[5]",
                "anon_inode:[eventpoll]",
            ],
            &tcp,
            &tcp6,
        );
        fake_process(&tree, 11, NETNS, &["socket:[200]"], &tcp, &tcp6);
        fake_process(
            &tree,
            12,
            NETNS,
            &["/dev/null", "socket:[999]"],
            &tcp,
            &tcp6,
        );
        let procfs = ProcFs::new(tree.path());
        assert_eq!(ports(&procfs, 10), vec![8080, 9090], "v4+v6 on 8080 once");
        assert_eq!(ports(&procfs, 11), vec![22]);
        assert_eq!(ports(&procfs, 12), Vec::<u16>::new(), "no listening socket");

        // One scan over all three reads the shared namespace once and answers the same.
        let mut scan = ListenerScan::new(&procfs);
        for (pid, expected) in [(10, vec![8080, 9090]), (11, vec![22]), (12, vec![])] {
            let got: Vec<u16> = scan
                .listening_sockets(pid)
                .unwrap_or_else(|e| panic!("scan of {pid}: {e}"))
                .iter()
                .map(|s| s.port)
                .collect();
            assert_eq!(got, expected, "pid {pid} in a scan");
        }
        assert_eq!(scan.tables.len(), 1, "one namespace, read once");
    }

    #[test]
    fn missing_tcp6_is_no_ipv6() {
        let tree = FakeTree::new("listeners-no-v6");
        fake_process(&tree, 5, NETNS, &["socket:[1]"], &line4(443, "0A", 1), "");
        tree.remove(&["5/net/tcp6"]);
        assert_eq!(ports(&ProcFs::new(tree.path()), 5), vec![443]);
    }

    #[test]
    fn a_vanished_process_is_gone() {
        let tree = FakeTree::new("listeners-gone");
        let procfs = ProcFs::new(tree.path());
        match listening_sockets(&procfs, 31337) {
            Err(HostError::Gone { pid: 31337 }) => {}
            other => panic!("expected Gone for a missing process, got {other:?}"),
        }
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file() {
        let tree = FakeTree::new("listeners-bad");
        fake_process(
            &tree,
            6,
            NETNS,
            &["socket:[1]"],
            "   0: 0100007F:ZZZZ 00000000:0000 0A 0 0 0 0 0 1\n",
            "",
        );
        match listening_sockets(&ProcFs::new(tree.path()), 6) {
            Err(HostError::Parse { path, reason }) => {
                assert!(path.ends_with("6/net/tcp"), "{}", path.display());
                assert!(reason.contains("port"), "{reason}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
        let tree = FakeTree::new("listeners-bad-ns");
        fake_process(&tree, 7, NETNS, &[], "", "");
        tree.remove(&["7/ns/net"]);
        tree.symlink("7/ns/net", Path::new("mnt:[1]"));
        match listening_sockets(&ProcFs::new(tree.path()), 7) {
            Err(HostError::Parse { path, .. }) => assert!(path.ends_with("7/ns/net")),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn lines_parse() {
        assert_eq!(parse_listen_line(&line4(80, "0A", 42)), Ok(Some((42, 80))));
        assert_eq!(
            parse_listen_line(&line6(65535, "0A", 7)),
            Ok(Some((7, 65535)))
        );
        assert_eq!(parse_listen_line(&line4(80, "01", 42)), Ok(None));
        assert!(parse_listen_line("   0: 0100007F:0050").is_err());
    }

    /// The reader against this process's real `/proc`: a socket it listens on is found, in its
    /// own namespace, and one it only connected is not.
    #[test]
    fn finds_a_real_listener() {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local address: {e}"))
            .port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let client_port = client
            .local_addr()
            .unwrap_or_else(|e| panic!("client address: {e}"))
            .port();
        let procfs = ProcFs::host();
        let sockets = listening_sockets(&procfs, std::process::id())
            .unwrap_or_else(|e| panic!("listening sockets of this process: {e}"));
        let netns = std::fs::read_link("/proc/self/ns/net")
            .unwrap_or_else(|e| panic!("reading /proc/self/ns/net: {e}"));
        assert!(
            sockets.contains(&ListeningSocket {
                netns: netns
                    .to_str()
                    .and_then(|t| t.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok())
                    .unwrap_or_else(|| panic!("odd netns link {}", netns.display())),
                port
            }),
            "port {port} not among {sockets:?}"
        );
        assert!(
            !sockets.iter().any(|s| s.port == client_port),
            "the client's port {client_port} is not listening: {sockets:?}"
        );
    }
}
