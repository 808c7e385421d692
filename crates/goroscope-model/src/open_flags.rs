//! Symbolic formatting of open(2) flags (x86_64 values), without allocating.

/// Mask of the access-mode bits (`O_RDONLY`, `O_WRONLY`, `O_RDWR`).
const O_ACCMODE: u32 = 0o3;

/// Flag bits and their names, in output order. Composite flags come before
/// the flags they include (`O_SYNC` includes `O_DSYNC`, `O_TMPFILE`
/// includes `O_DIRECTORY`) so that only the composite name is printed.
const FLAG_NAMES: [(u32, &str); 17] = [
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o4010000, "O_SYNC"),
    (0o10000, "O_DSYNC"),
    (0o20000, "O_ASYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o20200000, "O_TMPFILE"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o10000000, "O_PATH"),
];

/// Writes `flags` as `|`-separated symbolic names, access mode first, e.g.
/// `O_WRONLY|O_CREAT|O_TRUNC`. An access mode of 3 is written as
/// `O_ACCMODE`; bits with no name are written last as one hex number
/// (`0x...`).
pub fn write_open_flags(flags: u32, out: &mut impl core::fmt::Write) -> core::fmt::Result {
    out.write_str(match flags & O_ACCMODE {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    })?;
    let mut remaining = flags & !O_ACCMODE;
    for (mask, name) in FLAG_NAMES {
        if remaining & mask == mask {
            out.write_str("|")?;
            out.write_str(name)?;
            remaining &= !mask;
        }
    }
    if remaining != 0 {
        write!(out, "|{remaining:#x}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(flags: u32) -> String {
        let mut out = String::new();
        match write_open_flags(flags, &mut out) {
            Ok(()) => out,
            Err(err) => panic!("formatting failed: {err}"),
        }
    }

    #[test]
    fn access_modes() {
        assert_eq!(format(0), "O_RDONLY");
        assert_eq!(format(1), "O_WRONLY");
        assert_eq!(format(2), "O_RDWR");
        assert_eq!(format(3), "O_ACCMODE");
    }

    #[test]
    fn common_combinations() {
        assert_eq!(format(0o2000000), "O_RDONLY|O_CLOEXEC");
        assert_eq!(format(0o1 | 0o100 | 0o1000), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(
            format(0o2 | 0o100 | 0o200 | 0o2000000),
            "O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC"
        );
        assert_eq!(
            format(0o4000 | 0o200000 | 0o2000000 | 0o100000),
            "O_RDONLY|O_NONBLOCK|O_LARGEFILE|O_DIRECTORY|O_CLOEXEC"
        );
        assert_eq!(
            format(0o1 | 0o2000 | 0o400 | 0o20000 | 0o40000 | 0o400000 | 0o1000000),
            "O_WRONLY|O_NOCTTY|O_APPEND|O_ASYNC|O_DIRECT|O_NOFOLLOW|O_NOATIME"
        );
        assert_eq!(format(0o10000000), "O_RDONLY|O_PATH");
    }

    #[test]
    fn composite_flags() {
        assert_eq!(format(0o10000), "O_RDONLY|O_DSYNC");
        assert_eq!(format(0o1 | 0o4010000), "O_WRONLY|O_SYNC");
        // __O_SYNC without O_DSYNC is not O_SYNC.
        assert_eq!(format(0o4000000), "O_RDONLY|0x100000");
        assert_eq!(format(0o2 | 0o20200000), "O_RDWR|O_TMPFILE");
        assert_eq!(format(0o200000), "O_RDONLY|O_DIRECTORY");
        // __O_TMPFILE without O_DIRECTORY is not O_TMPFILE.
        assert_eq!(format(0o20000000), "O_RDONLY|0x400000");
    }

    #[test]
    fn unknown_bits_as_hex() {
        assert_eq!(format(0x8000_0000), "O_RDONLY|0x80000000");
        assert_eq!(format(0o1 | 0o100 | 0o4 | 0o10), "O_WRONLY|O_CREAT|0xc");
        assert_eq!(
            format(u32::MAX),
            "O_ACCMODE|O_CREAT|O_EXCL|O_NOCTTY|O_TRUNC|O_APPEND|O_NONBLOCK|O_SYNC\
             |O_ASYNC|O_DIRECT|O_LARGEFILE|O_TMPFILE|O_NOFOLLOW|O_NOATIME\
             |O_CLOEXEC|O_PATH|0xff80003c"
        );
    }
}
