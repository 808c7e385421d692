//! Classic tracepoints need tracefs, which a fresh machine here does not
//! mount: find it, or mount it at /sys/kernel/tracing.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

/// Where tracefs was found, or why it is not there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracefs {
    /// It was already mounted at this path.
    Mounted(PathBuf),
    /// goroscope mounted it at this path just now.
    MountedNow(PathBuf),
    /// It is not mounted and mounting failed.
    Unavailable(String),
}

const TRACEFS_PATHS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

fn is_mounted(path: &Path) -> bool {
    path.join("events").is_dir()
}

/// Finds tracefs, mounting it at /sys/kernel/tracing when it is missing.
pub fn ensure_mounted() -> Tracefs {
    for path in TRACEFS_PATHS {
        if is_mounted(Path::new(path)) {
            return Tracefs::Mounted(PathBuf::from(path));
        }
    }
    let target = TRACEFS_PATHS[0];
    match mount_tracefs(target) {
        Ok(()) if is_mounted(Path::new(target)) => Tracefs::MountedNow(PathBuf::from(target)),
        Ok(()) => Tracefs::Unavailable(format!("mounted tracefs at {target} but it has no events")),
        Err(err) => Tracefs::Unavailable(format!("mounting tracefs at {target}: {err}")),
    }
}

fn mount_tracefs(target: &str) -> io::Result<()> {
    let source = CString::new("nodev")?;
    let target_c = CString::new(target)?;
    let fstype = CString::new("tracefs")?;
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call;
    // a null data pointer is allowed by mount(2).
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
