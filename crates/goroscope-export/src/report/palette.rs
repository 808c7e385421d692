//! The report's colours: one per goroutine state and one per wait category, the same in every
//! chart, legend and table swatch, so "blue" means waiting on a channel everywhere.

use goroscope_model::recording::WaitCategory;
use plotters::style::RGBColor;

/// Goroutine states in the order charts stack them (busiest at the bottom).
pub(crate) const STATE_ORDER: [&str; 6] = [
    "running",
    "runnable",
    "syscall",
    "waiting",
    "preempted",
    "leaked",
];

/// The colour of a goroutine state (`running`, `runnable`, `waiting`, `syscall`, …).
pub(crate) fn state_colour(state: &str) -> RGBColor {
    match state {
        "running" => RGBColor(46, 157, 91),
        "runnable" => RGBColor(232, 163, 61),
        "syscall" => RGBColor(142, 90, 200),
        "waiting" => RGBColor(74, 120, 194),
        "preempted" => RGBColor(214, 110, 150),
        "leaked" => RGBColor(208, 72, 60),
        _ => RGBColor(150, 155, 165),
    }
}

/// The colour of a wait category.
pub(crate) fn category_colour(category: WaitCategory) -> RGBColor {
    match category {
        WaitCategory::Running => RGBColor(46, 157, 91),
        WaitCategory::Runnable => RGBColor(232, 163, 61),
        WaitCategory::NetworkIo => RGBColor(42, 157, 157),
        WaitCategory::Channels => RGBColor(74, 120, 194),
        WaitCategory::Locks => RGBColor(208, 87, 74),
        WaitCategory::Syscalls => RGBColor(142, 90, 200),
        WaitCategory::SleepAndTimers => RGBColor(143, 163, 191),
        WaitCategory::Gc => RGBColor(160, 120, 90),
        WaitCategory::Other => RGBColor(160, 160, 160),
    }
}

/// A short name for chart axes.
pub(crate) fn category_short_name(category: WaitCategory) -> &'static str {
    match category {
        WaitCategory::Runnable => "runnable",
        WaitCategory::SleepAndTimers => "sleep/timers",
        other => other.name(),
    }
}

/// `colour` as CSS (`#rrggbb`).
pub(crate) fn css(colour: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", colour.0, colour.1, colour.2)
}

/// A colour for the `i`-th of several series with no meaning of their own.
pub(crate) fn series_colour(i: usize) -> RGBColor {
    const COLOURS: [RGBColor; 6] = [
        RGBColor(74, 120, 194),
        RGBColor(232, 163, 61),
        RGBColor(46, 157, 91),
        RGBColor(208, 87, 74),
        RGBColor(142, 90, 200),
        RGBColor(42, 157, 157),
    ];
    COLOURS[i % COLOURS.len()]
}
