//! A file a command writes whole at the end of its run (a profile, a report): checked writable
//! before anything is attached (a path that cannot be written is a usage error, found before the
//! run, not after), written through a temporary file beside it and renamed into place, so a
//! failed or interrupted run never leaves half a file behind.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::settings::UsageError;

/// An output file being prepared: the temporary file exists until it is renamed into place or
/// dropped.
pub struct OutputFile {
    path: PathBuf,
    temporary: PathBuf,
    file: File,
    done: bool,
}

impl OutputFile {
    /// Checks `path` can be written by creating the temporary file beside it; `what` names the
    /// content in errors ("the profile", "the report").
    pub fn prepare(path: &Path, what: &str) -> Result<OutputFile, UsageError> {
        let name = path
            .file_name()
            .ok_or_else(|| UsageError(format!("--output {} names no file", path.display())))?;
        // The temporary file beside it could be created, but the rename over it at the end
        // would fail, after the whole run.
        if path.is_dir() {
            return Err(UsageError(format!(
                "cannot write {what} to {}: it is a directory; give a file name with --output",
                path.display()
            )));
        }
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(format!(".goroscope-{}", std::process::id()));
        let temporary = path.with_file_name(temporary_name);
        let file = File::create(&temporary).map_err(|e| {
            UsageError(format!(
                "cannot write {what} to {}: {e}; choose a writable path with --output",
                path.display()
            ))
        })?;
        Ok(OutputFile {
            path: path.to_path_buf(),
            temporary,
            file,
            done: false,
        })
    }

    /// Writes `bytes` and puts the file in place.
    pub fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.sync_all())
            .and_then(|()| std::fs::rename(&self.temporary, &self.path))
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        // Still here when the run failed before writing: leave nothing half-made behind.
        if !self.done {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_or_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("goroscope-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.html");
        let mut out = OutputFile::prepare(&path, "the report").unwrap();
        out.write(b"hello").unwrap();
        drop(out);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        let abandoned = OutputFile::prepare(&dir.join("never.html"), "the report").unwrap();
        drop(abandoned);
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("out.html")],
            "temporary files left behind"
        );
        let err = OutputFile::prepare(&dir, "the report").err().unwrap();
        assert!(err.0.contains("is a directory"), "{}", err.0);
        let err = OutputFile::prepare(Path::new("/nonexistent-dir/x.html"), "the report")
            .err()
            .unwrap();
        assert!(err.0.contains("choose a writable path"), "{}", err.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
