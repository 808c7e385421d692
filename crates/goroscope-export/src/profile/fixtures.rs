//! A small hand-built CPU profile shared by the profile outputs' unit tests: inlined lines,
//! an unsymbolized frame, string and numeric labels, recursion, a zero sample and a function
//! name holding `;`, a newline and an ESC.

use goroscope_model::profile::{Label, Line, Location, Mapping, Profile, ProfileKind, Sample};

/// Ten milliseconds, in nanoseconds.
pub(crate) const MS_10: i64 = 10_000_000;

/// A line of `function` in `file`.
pub(crate) fn line(function: &str, file: &str, line: u32, start_line: u32) -> Line {
    Line {
        function: function.to_string(),
        file: file.to_string(),
        line,
        start_line,
    }
}

/// The fixture. Locations: 0 `main.parse` inlined into `main.handle`; 1 and 6 `main.serve`
/// (two lines of one function); 2 `main.main`; 3 unsymbolized in libc; 4 `main.walk`;
/// 5 a name with control characters. Samples (samples, cpu ns):
/// - `main.main;main.serve;main.handle;main.parse` 3, 30ms, tenant=alpha goid=17
/// - `main.main;main.serve;libc.so.6+0x38000` 1, 10ms, tenant=beta goid=18
/// - `main.main;main.walk;main.walk;main.walk` 2, 20ms (recursion)
/// - `main.main;<evil name>` 1, 5ms
/// - `main.main;main.serve` (via location 6) 0, 0 (skipped by folded outputs)
/// - `main.main;main.serve;main.handle;main.parse` again 1, 10ms, tenant=alpha goid=17
pub(crate) fn cpu_profile() -> Profile {
    let mut profile = Profile::new(ProfileKind::Cpu);
    profile.period = MS_10;
    profile.time_ns = 1_700_000_000_000_000_000;
    profile.duration_ns = 2_000_000_000;
    profile.comments = vec!["lost 3 samples".to_string()];
    profile.mappings = vec![
        Mapping {
            start: 0x40_0000,
            limit: 0x80_0000,
            offset: 0,
            file: "/srv/app/server".to_string(),
            build_id: "a1b2c3".to_string(),
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        },
        Mapping {
            start: 0x7f00_0000_0000,
            limit: 0x7f00_0020_0000,
            offset: 0x28000,
            file: "/usr/lib/libc.so.6".to_string(),
            build_id: "d4e5f6".to_string(),
            ..Mapping::default()
        },
    ];
    let at = |address: u64, mapping: usize, lines: Vec<Line>| Location {
        address,
        mapping: Some(mapping),
        lines,
    };
    profile.locations = vec![
        at(
            0x40_1000,
            0,
            vec![
                line("main.parse", "/src/app/parse.go", 12, 10),
                line("main.handle", "/src/app/server.go", 40, 30),
            ],
        ),
        at(
            0x40_2000,
            0,
            vec![line("main.serve", "/src/app/server.go", 80, 70)],
        ),
        at(
            0x40_3000,
            0,
            vec![line("main.main", "/src/app/main.go", 10, 5)],
        ),
        at(0x7f00_0001_0000, 1, vec![]),
        at(
            0x40_4000,
            0,
            vec![line("main.walk", "/src/app/tree.go", 20, 18)],
        ),
        at(
            0x40_5000,
            0,
            vec![line("main.evil;\nname\u{1b}", "/src/app/evil.go", 3, 1)],
        ),
        at(
            0x40_2100,
            0,
            vec![line("main.serve", "/src/app/server.go", 85, 70)],
        ),
    ];
    let sample = |locations: &[usize], values: [i64; 2], labels: Vec<Label>| Sample {
        locations: locations.to_vec(),
        values: values.to_vec(),
        labels,
    };
    let alpha = || vec![Label::text("tenant", "alpha"), Label::number("goid", 17)];
    profile.samples = vec![
        sample(&[0, 1, 2], [3, 3 * MS_10], alpha()),
        sample(
            &[3, 1, 2],
            [1, MS_10],
            vec![Label::text("tenant", "beta"), Label::number("goid", 18)],
        ),
        sample(&[4, 4, 4, 2], [2, 2 * MS_10], vec![]),
        sample(&[5, 2], [1, MS_10 / 2], vec![]),
        sample(&[6, 2], [0, 0], vec![]),
        sample(&[0, 1, 2], [1, MS_10], alpha()),
    ];
    profile
}
