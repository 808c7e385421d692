//! Reading the config file itself, safely: only a regular file, opened without blocking
//! (a FIFO or a device would otherwise block `--check`, startup and every reload forever, or
//! be read until memory runs out), and at most [`MAX_CONFIG_BYTES`].

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::error::ConfigError;

/// The largest config file accepted. A real one is a few KiB; anything near this size is a
/// wrong path or a generated file gone wrong, and parsing it would hold the agent up.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The text of the config file at `path`, refused with a reason unless it is a regular file
/// of at most [`MAX_CONFIG_BYTES`] holding UTF-8.
pub(super) fn read_text(path: &Path) -> Result<String, ConfigError> {
    // O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one. It has no
    // effect on reading a regular file, the only kind read below.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| ConfigError::unreadable(path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| ConfigError::unreadable(path, e))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(ConfigError::whole_file(
            path,
            format!("is {what}, not a regular file; point --config at the YAML file itself"),
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large(path, meta.len()));
    }
    // The file may grow between fstat and read: never read more than the limit allows.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ConfigError::unreadable(path, e))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large(path, bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| ConfigError::not_utf8(path, &e))
}

fn too_large(path: &Path, len: u64) -> ConfigError {
    ConfigError::whole_file(
        path,
        format!(
            "is {len} bytes, more than the {MAX_CONFIG_BYTES} bytes (1 MiB) a config file may \
             hold; check that --config names the agent's YAML config"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::fs::File;
    use std::os::unix::ffi::OsStrExt;
    use std::time::{Duration, Instant};

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("goroscope-cfgfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let path = scratch("fifo.yaml");
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = Instant::now();
        let error = read_text(&path).unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            error.contains("is a FIFO (named pipe), not a regular file"),
            "{error}"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn devices_and_directories_are_refused() {
        let started = Instant::now();
        let error = read_text(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            error.starts_with("/dev/zero: is a character device"),
            "{error}"
        );
        let error = read_text(Path::new("/tmp")).unwrap_err().to_string();
        assert!(error.contains("is a directory"), "{error}");
    }

    #[test]
    fn files_over_the_limit_are_refused_without_reading_them() {
        let path = scratch("big.yaml");
        let file = File::create(&path).unwrap();
        // Sparse: 200 MB that costs nothing to make.
        file.set_len(200_000_000).unwrap();
        let started = Instant::now();
        let error = read_text(&path).unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            error.contains("is 200000000 bytes, more than the 1048576"),
            "{error}"
        );

        file.set_len(MAX_CONFIG_BYTES).unwrap();
        assert_eq!(read_text(&path).unwrap().len() as u64, MAX_CONFIG_BYTES);
        let _ = std::fs::remove_file(&path);
    }
}
