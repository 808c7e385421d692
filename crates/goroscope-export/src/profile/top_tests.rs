//! Top table tests: the whole table for the fixture, recursion, limits and value formatting.

use goroscope_model::profile::{Line, Location, Profile, ProfileKind, Sample};

use super::super::fixtures::cpu_profile;
use super::{format_nanoseconds, top_table};

#[test]
fn the_cpu_table_sorts_by_flat_then_cum_and_counts_recursion_once() {
    let table = top_table(&cpu_profile(), 1, 100);
    let expected = "\
Type: cpu (nanoseconds)
Total: 75ms
Showing 7 of 7 functions, accounting for 75ms (100.00% of total)
      flat   flat%    sum%        cum    cum%  function
      40ms  53.33%  53.33%       40ms  53.33%  main.parse
      20ms  26.67%  80.00%       20ms  26.67%  main.walk
      10ms  13.33%  93.33%       10ms  13.33%  libc.so.6+0x38000
       5ms   6.67% 100.00%        5ms   6.67%  main.evil;\\nname\\e
         0   0.00% 100.00%       75ms 100.00%  main.main
         0   0.00% 100.00%       50ms  66.67%  main.serve
         0   0.00% 100.00%       40ms  53.33%  main.handle
";
    assert_eq!(table, expected, "got:\n{table}");
}

#[test]
fn rows_are_limited_and_counts_print_as_integers() {
    let table = top_table(&cpu_profile(), 0, 2);
    let expected = "\
Type: samples (count)
Total: 8
Showing 2 of 7 functions, accounting for 6 (75.00% of total)
      flat   flat%    sum%        cum    cum%  function
         4  50.00%  50.00%          4  50.00%  main.parse
         2  25.00%  75.00%          2  25.00%  main.walk
";
    assert_eq!(table, expected, "got:\n{table}");
}

#[test]
fn mutual_recursion_and_inlined_self_calls_count_once_in_cum() {
    let mut profile = Profile::new(ProfileKind::Wall);
    let named = |function: &str| Line {
        function: function.to_string(),
        ..Line::default()
    };
    // One location holding b inlined into a, then a, b, a below it.
    profile.locations.push(Location {
        address: 1,
        mapping: None,
        lines: vec![named("b"), named("a")],
    });
    profile.locations.push(Location {
        address: 2,
        mapping: None,
        lines: vec![named("a")],
    });
    profile.samples.push(Sample {
        locations: vec![0, 0, 1],
        values: vec![1, 7],
        labels: vec![],
    });
    let table = top_table(&profile, 1, 10);
    let rows: Vec<&str> = table.lines().skip(4).collect();
    assert_eq!(
        rows,
        [
            "       7ns 100.00% 100.00%        7ns 100.00%  b",
            "         0   0.00% 100.00%        7ns 100.00%  a",
        ]
    );
}

#[test]
fn an_unknown_value_or_an_empty_profile_gives_a_header_only() {
    let table = top_table(&cpu_profile(), 5, 10);
    assert!(
        table.starts_with("Type: value #5 (not in this profile)\nTotal: 0\n"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 4);
    let table = top_table(&Profile::new(ProfileKind::OffCpu), 1, 10);
    assert!(table.contains("Showing 0 of 0 functions, accounting for 0 (0.00% of total)"));
}

#[test]
fn nanoseconds_print_with_three_significant_digits() {
    let cases = [
        (0, "0"),
        (999, "999ns"),
        (1_000, "1us"),
        (45_600_000, "45.6ms"),
        (10_000_000, "10ms"),
        (1_234_567_890, "1.23s"),
        (1_500_000_000, "1.5s"),
        (999_960_000, "1s"),
        (999_960, "1ms"),
        (123_456_789, "123ms"),
        (-5_000_000, "-5ms"),
        (3_600_000_000_000, "3600s"),
    ];
    for (nanoseconds, text) in cases {
        assert_eq!(format_nanoseconds(nanoseconds), text, "{nanoseconds}ns");
    }
}
