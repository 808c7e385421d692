//! Test support: builds the Go programs under `testdata/go/` with every Go toolchain goroscope
//! supports (Go 1.19 through 1.27) in every build mode it must read (default, stripped, PIE, static,
//! cgo), and hands back the path of the binary.
//!
//! A toolchain that is missing makes the build panic with the command to install it: tests never
//! skip because Go is absent. `scripts/go-toolchains.sh` installs them all.

mod running;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

pub use running::Running;

/// One Go toolchain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Toolchain {
    /// What `go version` prints for it (and what the binaries it builds carry), e.g. `go1.22.12`.
    pub version: &'static str,
    /// How to run it.
    pub source: ToolchainSource,
}

/// Where a toolchain comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolchainSource {
    /// A `go` binary at a fixed path (Debian's golang-go).
    Path(&'static str),
    /// The machine's `go` with `GOTOOLCHAIN=<version>`, fetched once through the module proxy.
    GoToolchain,
}

/// Every toolchain the tests cover, oldest first. Keep in step with `scripts/go-toolchains.sh`.
pub const TOOLCHAINS: &[Toolchain] = &[
    Toolchain {
        version: "go1.19.8",
        source: ToolchainSource::Path("/usr/lib/go-1.19/bin/go"),
    },
    Toolchain {
        version: "go1.20.14",
        source: ToolchainSource::GoToolchain,
    },
    Toolchain {
        version: "go1.21.13",
        source: ToolchainSource::GoToolchain,
    },
    Toolchain {
        version: "go1.22.12",
        source: ToolchainSource::GoToolchain,
    },
    Toolchain {
        version: "go1.23.12",
        source: ToolchainSource::GoToolchain,
    },
    Toolchain {
        version: "go1.24.13",
        source: ToolchainSource::GoToolchain,
    },
    Toolchain {
        version: "go1.25.14",
        source: ToolchainSource::GoToolchain,
    },
    Toolchain {
        version: "go1.26.8",
        source: ToolchainSource::GoToolchain,
    },
    Toolchain {
        version: "go1.27.4",
        source: ToolchainSource::GoToolchain,
    },
];

/// The newest toolchain the tests cover. With its offset-table line hidden (see
/// [`HIDE_OFFSET_TABLE_ENV`]) it plays a Go release newer than goroscope's tables, whose true
/// layout the tests still know from its DWARF.
pub const NEWEST_TOOLCHAIN: Toolchain = TOOLCHAINS[TOOLCHAINS.len() - 1];

/// goroscope's test-only switch that hides offset-table lines, e.g. `1.27` or `all`
/// (`goroscope_gobin::offsets::HIDE_TABLE_ENV`).
pub const HIDE_OFFSET_TABLE_ENV: &str = "GOROSCOPE_TEST_HIDE_OFFSET_TABLE";

impl Toolchain {
    /// The release line as the hide switch takes it: `1.27` for go1.27.4.
    pub fn line(self) -> String {
        let numbers = self.version.trim_start_matches("go");
        let mut parts = numbers.split('.');
        match (parts.next(), parts.next()) {
            (Some(major), Some(minor)) => format!("{major}.{minor}"),
            _ => numbers.to_string(),
        }
    }
}

/// How a program is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    /// `go build` with the toolchain's defaults (symbols and DWARF kept).
    Default,
    /// `-ldflags="-s -w"`: no `.symtab`, no DWARF.
    Stripped,
    /// `-buildmode=pie`: position independent, loaded at a random base.
    Pie,
    /// `CGO_ENABLED=0`: statically linked by Go's internal linker.
    Static,
    /// `CGO_ENABLED=1 -tags cgo_mode`: the program's cgo file is compiled in and linked with libc.
    Cgo,
}

/// Every build mode.
pub const BUILD_MODES: &[BuildMode] = &[
    BuildMode::Default,
    BuildMode::Stripped,
    BuildMode::Pie,
    BuildMode::Static,
    BuildMode::Cgo,
];

impl BuildMode {
    /// A short name for paths and messages.
    pub fn name(self) -> &'static str {
        match self {
            BuildMode::Default => "default",
            BuildMode::Stripped => "stripped",
            BuildMode::Pie => "pie",
            BuildMode::Static => "static",
            BuildMode::Cgo => "cgo",
        }
    }
}

/// The machine's own `go` (used to run `GOTOOLCHAIN` toolchains).
fn host_go() -> PathBuf {
    for candidate in ["/usr/local/go/bin/go", "/usr/bin/go"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    PathBuf::from("go")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Directory of test program `program` (a folder under `testdata/go/`).
pub fn program_dir(program: &str) -> PathBuf {
    repo_root().join("testdata/go").join(program)
}

/// Builds `program` with `toolchain` in `mode` and returns the binary's path. Builds are cached by
/// Go's build cache; the output is written to a temporary name and renamed, so concurrent tests
/// building the same thing do not see half-written files.
#[track_caller]
pub fn build(program: &str, toolchain: Toolchain, mode: BuildMode) -> PathBuf {
    build_with(program, toolchain, mode, mode == BuildMode::Stripped)
}

/// Like [`build`], but always with `-ldflags="-s -w"` (no `.symtab`, no DWARF), as production
/// builds usually are: a stripped PIE, a stripped static binary, a stripped cgo binary...
#[track_caller]
pub fn build_stripped(program: &str, toolchain: Toolchain, mode: BuildMode) -> PathBuf {
    build_with(program, toolchain, mode, true)
}

#[track_caller]
fn build_with(program: &str, toolchain: Toolchain, mode: BuildMode, strip: bool) -> PathBuf {
    let suffix = if strip && mode != BuildMode::Stripped {
        "-stripped"
    } else {
        ""
    };
    let out_dir = repo_root()
        .join("target/go-builds")
        .join(program)
        .join(format!("{}-{}{suffix}", toolchain.version, mode.name()));
    std::fs::create_dir_all(&out_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", out_dir.display()));
    let output = out_dir.join(program);
    static UNIQUE: AtomicU64 = AtomicU64::new(0);
    let temporary = out_dir.join(format!(
        ".{program}.{}.{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    ));

    let mut command = match toolchain.source {
        ToolchainSource::Path(go) => {
            if !Path::new(go).exists() {
                panic!(
                    "{} is missing at {go}: run scripts/go-toolchains.sh",
                    toolchain.version
                );
            }
            let mut command = Command::new(go);
            command.env("GOTOOLCHAIN", "local");
            command
        }
        ToolchainSource::GoToolchain => {
            let mut command = Command::new(host_go());
            command.env("GOTOOLCHAIN", toolchain.version);
            command
        }
    };
    command
        .current_dir(program_dir(program))
        .env("GOFLAGS", "-buildvcs=false")
        .arg("build")
        .arg("-o")
        .arg(&temporary);
    if strip {
        command.arg("-ldflags=-s -w");
    }
    match mode {
        BuildMode::Default | BuildMode::Stripped => {}
        BuildMode::Pie => {
            command.arg("-buildmode=pie");
        }
        BuildMode::Static => {
            command.env("CGO_ENABLED", "0");
        }
        BuildMode::Cgo => {
            command.env("CGO_ENABLED", "1").arg("-tags=cgo_mode");
        }
    }
    command.arg(".");
    let result = command.output().unwrap_or_else(|e| {
        panic!(
            "cannot run go for {}: {e}; run scripts/go-toolchains.sh",
            toolchain.version
        )
    });
    if !result.status.success() {
        panic!(
            "building testdata/go/{program} with {} ({}) failed: {}\n(run scripts/go-toolchains.sh if the toolchain is missing)",
            toolchain.version,
            mode.name(),
            String::from_utf8_lossy(&result.stderr)
        );
    }
    std::fs::rename(&temporary, &output)
        .unwrap_or_else(|e| panic!("cannot move the build to {}: {e}", output.display()));
    output
}

/// The line numbers (1-based) in `program`'s `file` of the lines carrying `marker` (e.g.
/// `goroscope:create chan-send`), so tests name lines by marker instead of hard-coding numbers.
#[track_caller]
pub fn marked_lines(program: &str, file: &str, marker: &str) -> Vec<u32> {
    let path = program_dir(program).join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let lines: Vec<u32> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            line.split("//").nth(1).is_some_and(|comment| {
                comment.split_whitespace().collect::<Vec<_>>().join(" ") == marker
            })
        })
        .map(|(index, _)| index as u32 + 1)
        .collect();
    assert!(
        !lines.is_empty(),
        "no line in {} is marked `// {marker}`",
        path.display()
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_lines_are_major_dot_minor() {
        assert_eq!(TOOLCHAINS[0].line(), "1.19");
        let newest = NEWEST_TOOLCHAIN;
        assert!(newest.version.starts_with(&format!("go{}.", newest.line())));
    }

    #[test]
    fn builds_the_sample_in_every_mode_with_the_newest_toolchain() {
        let newest = NEWEST_TOOLCHAIN;
        for &mode in BUILD_MODES {
            let binary = build("sample", newest, mode);
            assert!(binary.exists(), "{} missing", binary.display());
        }
        assert_eq!(
            marked_lines("sample", "main.go", "sample:go-statement").len(),
            1
        );
    }
}
