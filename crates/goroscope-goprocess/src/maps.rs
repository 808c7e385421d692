//! Where a process's executable is loaded: the load bias of a position-independent (PIE) Go binary,
//! found by matching the executable's inode against the mappings in `/proc/PID/maps`.

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

struct Mapping {
    start: u64,
    offset: u64,
    device: (u64, u64),
    inode: u64,
}

/// Parses `start-end perms offset dev inode path`.
fn parse_mapping(line: &str) -> Option<Mapping> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let _perms = fields.next()?;
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let device = (
        u64::from_str_radix(major, 16).ok()?,
        u64::from_str_radix(minor, 16).ok()?,
    );
    let inode = fields.next()?.parse().ok()?;
    let start = u64::from_str_radix(range.split('-').next()?, 16).ok()?;
    Some(Mapping {
        start,
        offset,
        device,
        inode,
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
        assert!(parse_mapping("garbage").is_none());
    }
}
