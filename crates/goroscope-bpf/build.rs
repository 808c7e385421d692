//! Compiles the BPF programs under `bpf/` with clang and generates their Rust
//! skeletons into `OUT_DIR` (libbpf-cargo).

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

/// The BPF objects, each `bpf/<name>.bpf.c`.
const OBJECTS: &[&str] = &[
    "syscalls", "process", "files", "probe", "sched", "tcp", "profile", "offcpu",
];

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let bpf_dir = PathBuf::from("bpf");
    println!("cargo:rerun-if-changed=bpf");
    for name in OBJECTS {
        let src = bpf_dir.join(format!("{name}.bpf.c"));
        let skel = out_dir.join(format!("{name}.skel.rs"));
        if let Err(err) = SkeletonBuilder::new()
            .source(&src)
            .clang_args(["-I", "bpf", "-O2", "-g", "-Wall", "-Werror"])
            .build_and_generate(&skel)
        {
            // A build script reports failure by panicking; say what to install.
            panic!(
                "compiling {} failed: {err:#}\n\
                 goroscope's BPF programs need clang, libelf-dev, zlib1g-dev and pkg-config \
                 (run scripts/install-deps.sh as root)",
                src.display()
            );
        }
    }
}
