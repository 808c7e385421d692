//! A process's mappings from `/proc/PID/maps`: where its executable is loaded (the load bias of a
//! position-independent Go binary, found by matching the executable's inode), and which files its
//! code comes from (for symbolizing sampled addresses).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use goroscope_gobin::ElfFile;

/// The amount to add to a linked address of `elf` to get its address in process `pid`: 0 for
/// fixed-address executables; for PIE, the mapping start of the executable's first segment minus
/// that segment's page-aligned linked address. `None` when the mapping cannot be found.
pub fn load_bias(proc_root: &Path, pid: u32, elf: &ElfFile) -> Option<u64> {
    if !elf.is_position_independent() {
        return Some(0);
    }
    let process = proc_root.join(pid.to_string());
    let metadata = std::fs::metadata(process.join("exe")).ok()?;
    let (inode, device) = (metadata.ino(), metadata.dev());
    let device = (libc::major(device) as u64, libc::minor(device) as u64);
    let maps = std::fs::read_to_string(process.join("maps")).ok()?;
    let first_mapping = maps
        .lines()
        .filter_map(parse_mapping)
        .filter(|m| m.inode == inode && m.device == device && m.offset == 0)
        .map(|mapping| mapping.start)
        .min()?;
    // The mapping at file offset 0 holds the segment that starts at file offset 0.
    let first_segment = elf
        .segments()
        .iter()
        .filter(|segment| segment.size > 0 && segment.file_offset & !0xfff == 0)
        .map(|segment| segment.address & !0xfff)
        .min()?;
    first_mapping.checked_sub(first_segment)
}

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// True when mapped executable.
    pub executable: bool,
    /// File offset mapped at `start`.
    pub offset: u64,
    /// The file's device (major, minor).
    pub device: (u64, u64),
    /// The file's inode (0 for anonymous memory).
    pub inode: u64,
    /// The path as the process sees it (`[vdso]`, `[anon:…]`, empty for anonymous memory; a
    /// deleted file keeps its ` (deleted)` suffix).
    pub path: String,
}

/// The executable mappings of process `pid`, in address order. Empty when the process is gone
/// or its maps cannot be read.
pub fn executable_mappings(proc_root: &Path, pid: u32) -> Vec<Mapping> {
    let path = proc_root.join(pid.to_string()).join("maps");
    let Ok(maps) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    maps.lines()
        .filter_map(parse_mapping)
        .filter(|mapping| mapping.executable)
        .collect()
}

/// Parses `start-end perms offset dev inode path`.
fn parse_mapping(line: &str) -> Option<Mapping> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let device = (
        u64::from_str_radix(major, 16).ok()?,
        u64::from_str_radix(minor, 16).ok()?,
    );
    let inode = fields.next()?.parse().ok()?;
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    // The path is the rest of the line after the inode's column (it may hold spaces).
    let path = line
        .splitn(6, char::is_whitespace)
        .nth(5)
        .map(str::trim_start)
        .unwrap_or("")
        .to_string();
    Some(Mapping {
        start,
        end,
        executable: perms.as_bytes().get(2) == Some(&b'x'),
        offset,
        device,
        inode,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_mapping;

    #[test]
    fn parses_a_maps_line() {
        let m = parse_mapping(
            "55d0c6a00000-55d0c6b3a000 r--p 00000000 fe:01 1319171    /usr/bin/thing (deleted)",
        )
        .unwrap();
        assert_eq!((m.start, m.offset, m.inode), (0x55d0c6a00000, 0, 1319171));
        assert_eq!(m.device, (0xfe, 0x01));
        assert_eq!((m.end, m.executable), (0x55d0c6b3a000, false));
        assert_eq!(m.path, "/usr/bin/thing (deleted)");
        let m = parse_mapping("7ffd1000-7ffd3000 r-xp 00000000 00:00 0  [vdso]").unwrap();
        assert!(m.executable);
        assert_eq!(m.path, "[vdso]");
        assert!(parse_mapping("garbage").is_none());
    }
}
