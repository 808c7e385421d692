//! Fuzz target: arbitrary bytes as a `.go.buildinfo` section must decode or fail, never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = goroscope_gobin::buildinfo::parse(data);
});
