//! Small-file reading shared by the readers: a file read into a caller's buffer (no allocation),
//! paths built in a reusable buffer, and the test for "the thing being read went away".

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Reads all of `path` into `buf` and returns the bytes read. A file that does not fit is an
/// `InvalidData` error rather than silently truncated.
pub(crate) fn read_small<'b>(path: &Path, buf: &'b mut [u8]) -> std::io::Result<&'b [u8]> {
    let mut file = std::fs::File::open(path)?;
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match file.read(rest) {
            Ok(0) => return Ok(buf.get(..filled).unwrap_or(&[])),
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    // Full: only an error if there is more to come.
    let mut probe = [0u8; 1];
    if file.read(&mut probe)? != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file is larger than the {} bytes expected", buf.len()),
        ));
    }
    Ok(buf.get(..filled).unwrap_or(&[]))
}

/// Whether `error` means the file's owner went away: the file or directory no longer exists
/// (`ENOENT`), the process exited (`ESRCH`) or the network device was unregistered (`ENODEV`).
pub(crate) fn is_gone(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::NotFound
        || matches!(error.raw_os_error(), Some(libc::ESRCH | libc::ENODEV))
}

/// Parses an unsigned decimal number surrounded by optional ASCII whitespace.
pub(crate) fn parse_u64(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes.trim_ascii()).ok()?.parse().ok()
}

/// Builds `<root>/<pid>/<file>` (or `<root>/<pid>` when `file` is empty) in `scratch`, reusing
/// its capacity, and returns it.
pub(crate) fn pid_path<'s>(
    root: &Path,
    pid: u32,
    file: &str,
    scratch: &'s mut PathBuf,
) -> &'s Path {
    let text: &mut OsString = scratch.as_mut_os_string();
    text.clear();
    text.push(root.as_os_str());
    text.push("/");
    let mut digits = [0u8; 10];
    text.push(format_u32(pid, &mut digits));
    if !file.is_empty() {
        text.push("/");
        text.push(file);
    }
    scratch.as_path()
}

/// Formats `value` in decimal into `digits` without allocating.
fn format_u32(mut value: u32, digits: &mut [u8; 10]) -> &str {
    let mut start = digits.len();
    loop {
        start -= 1;
        // `value % 10` is a single digit, so the cast cannot truncate.
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    std::str::from_utf8(&digits[start..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_pids() {
        let mut digits = [0u8; 10];
        assert_eq!(format_u32(0, &mut digits), "0");
        assert_eq!(format_u32(7, &mut digits), "7");
        assert_eq!(format_u32(4_294_967_295, &mut digits), "4294967295");
        let mut scratch = PathBuf::new();
        assert_eq!(
            pid_path(Path::new("/proc"), 1234, "stat", &mut scratch),
            Path::new("/proc/1234/stat")
        );
        assert_eq!(
            pid_path(Path::new("/x"), 5, "", &mut scratch),
            Path::new("/x/5")
        );
    }

    #[test]
    fn reads_small_files_whole_and_refuses_larger_ones() {
        let tree = crate::testfs::FakeTree::new("fsread");
        tree.write("four", "1234");
        tree.write("five", "12345");
        let mut buf = [0u8; 4];
        assert_eq!(
            read_small(&tree.path().join("four"), &mut buf).unwrap(),
            b"1234"
        );
        let error = read_small(&tree.path().join("five"), &mut buf).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        let mut big = [0u8; 64];
        assert_eq!(
            read_small(&tree.path().join("five"), &mut big).unwrap(),
            b"12345"
        );
        let missing = read_small(&tree.path().join("none"), &mut big).unwrap_err();
        assert!(is_gone(&missing));
    }

    #[test]
    fn parses_numbers() {
        assert_eq!(parse_u64(b" 42\n"), Some(42));
        assert_eq!(parse_u64(b"x"), None);
        assert_eq!(parse_u64(b""), None);
    }
}
