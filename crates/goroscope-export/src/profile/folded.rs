//! Folded stacks, the text format of Brendan Gregg's `stackcollapse` scripts that flame graph
//! tools read: one line per distinct stack, `root;caller;leaf <value>`.
//!
//! Frame names come from [`Profile::frame_names`] and are escaped with goroscope's one rule
//! ([`goroscope_model::escape`]: control characters as `\n`, `\e`, `\xNN`, `\` as `\\`), and
//! `;` is written `\x3b`, so every line parses and [`goroscope_model::unescape`] gives each
//! name's exact text back.

use std::collections::BTreeMap;

use goroscope_model::profile::Profile;

/// The frame written for a sample without any location.
const EMPTY_STACK: &str = "[unknown]";

/// Appends `profile`'s folded stacks to `out`: one line per distinct root-first stack,
/// `root;...;leaf <sum>`, where the sum is of each sample's `values[value]`; lines sorted
/// by stack. Samples whose value is zero (or missing), and stacks summing to zero, are left
/// out.
pub fn folded(profile: &Profile, value: usize, out: &mut String) {
    for (stack, total) in folded_stacks(profile, value) {
        out.push_str(&stack);
        out.push(' ');
        out.push_str(&total.to_string());
        out.push('\n');
    }
}

/// Each distinct root-first stack (escaped, `;`-joined) and the sum of its values, sorted by
/// stack, zero sums left out.
pub(crate) fn folded_stacks(profile: &Profile, value: usize) -> BTreeMap<String, i64> {
    let mut stacks: BTreeMap<String, i64> = BTreeMap::new();
    let mut frames: Vec<String> = Vec::new();
    let mut stack = String::new();
    for sample in &profile.samples {
        let amount = sample.values.get(value).copied().unwrap_or(0);
        if amount == 0 {
            continue;
        }
        frames.clear();
        frames.extend(profile.frame_names(sample).map(|frame| frame.to_string()));
        stack.clear();
        for (i, frame) in frames.iter().rev().enumerate() {
            if i > 0 {
                stack.push(';');
            }
            push_frame(&mut stack, frame);
        }
        if frames.is_empty() {
            stack.push_str(EMPTY_STACK);
        }
        match stacks.get_mut(stack.as_str()) {
            Some(total) => *total = total.saturating_add(amount),
            None => {
                stacks.insert(stack.clone(), amount);
            }
        }
    }
    stacks.retain(|_, total| *total != 0);
    stacks
}

/// Appends `name` escaped for a folded line.
fn push_frame(out: &mut String, name: &str) {
    let escaped = goroscope_model::escape(name.as_bytes());
    if escaped.contains(';') {
        out.push_str(&escaped.replace(';', "\\x3b"));
    } else {
        out.push_str(&escaped);
    }
}

#[cfg(test)]
mod tests {
    use goroscope_model::profile::{Profile, ProfileKind, Sample};

    use super::super::fixtures::{cpu_profile, MS_10};
    use super::folded;

    #[test]
    fn stacks_are_root_first_merged_sorted_and_escaped() {
        let mut out = String::new();
        folded(&cpu_profile(), 1, &mut out);
        let expected = [
            format!("main.main;main.evil\\x3b\\nname\\e {}", MS_10 / 2),
            format!("main.main;main.serve;libc.so.6+0x38000 {MS_10}"),
            format!("main.main;main.serve;main.handle;main.parse {}", 4 * MS_10),
            format!("main.main;main.walk;main.walk;main.walk {}", 2 * MS_10),
        ];
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines, expected);
        assert!(out.ends_with('\n'));
    }

    #[test]
    fn every_line_parses_and_names_unescape_to_the_original() {
        let mut out = String::new();
        folded(&cpu_profile(), 0, &mut out);
        assert_eq!(
            out.lines().count(),
            4,
            "the zero sample is left out:\n{out}"
        );
        let mut total = 0;
        for line in out.lines() {
            assert!(
                !line.chars().any(char::is_control),
                "control character in {line:?}"
            );
            let Some((stack, count)) = line.rsplit_once(' ') else {
                panic!("no count in {line:?}");
            };
            total += count
                .parse::<i64>()
                .unwrap_or_else(|error| panic!("{count:?} in {line:?}: {error}"));
            for frame in stack.split(';') {
                assert!(!frame.is_empty(), "empty frame in {line:?}");
            }
        }
        assert_eq!(total, 8);
        let evil = out.lines().find(|l| l.contains("evil")).unwrap_or_default();
        let name = evil.split(';').nth(1).unwrap_or_default();
        let name = name.rsplit_once(' ').map_or(name, |(name, _)| name);
        assert_eq!(
            goroscope_model::unescape(name).as_deref(),
            Some("main.evil;\nname\u{1b}".as_bytes())
        );
    }

    #[test]
    fn values_out_of_range_or_zero_give_nothing_and_empty_stacks_are_named() {
        let mut out = String::new();
        folded(&cpu_profile(), 7, &mut out);
        assert_eq!(out, "");

        let mut profile = Profile::new(ProfileKind::Cpu);
        profile.samples.push(Sample {
            locations: vec![],
            values: vec![2, 20],
            labels: vec![],
        });
        profile.samples.push(Sample {
            locations: vec![],
            values: vec![-2, 0],
            labels: vec![],
        });
        folded(&profile, 0, &mut out);
        assert_eq!(out, "", "stacks summing to zero are left out");
        folded(&profile, 1, &mut out);
        assert_eq!(out, "[unknown] 20\n");
    }
}
