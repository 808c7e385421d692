#!/usr/bin/env python3
"""Generate goroscope-model's syscall and errno name tables.

Reads the Linux uapi headers installed on this machine and writes
crates/goroscope-model/src/syscall_names.rs and errno_names.rs. The output
is already rustfmt-formatted and deterministic for a given set of headers.

Usage:
    scripts/gen-tables.py            # (re)write the generated files
    scripts/gen-tables.py --check    # exit 1 if they are out of date

Only the Python standard library is used.
"""

import argparse
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "crates" / "goroscope-model" / "src"

UNISTD_HEADER = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
ERRNO_HEADERS = [
    Path("/usr/include/asm-generic/errno-base.h"),
    Path("/usr/include/asm-generic/errno.h"),
]

# System call numbers exported as constants: (const name, syscall name).
SYSCALL_CONSTS = [
    ("SYS_OPEN", "open"),
    ("SYS_OPENAT", "openat"),
    ("SYS_OPENAT2", "openat2"),
    ("SYS_EXIT", "exit"),
    ("SYS_EXIT_GROUP", "exit_group"),
    ("SYS_GETPPID", "getppid"),
]

SYSCALL_DEFINE = re.compile(r"^\s*#\s*define\s+__NR_(\w+)\s+(\d+)\s*$")
ERRNO_DEFINE = re.compile(r"^\s*#\s*define\s+(E[A-Z0-9]+)\s+(\d+)\b")

# Checks emitted into the generated tests; these are fixed kernel ABI values
# written here independently of the parsed headers.
SYSCALL_TESTS = """\
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers() {
        assert_eq!(syscall_name(0), Some("read"));
        assert_eq!(syscall_name(1), Some("write"));
        assert_eq!(syscall_name(2), Some("open"));
        assert_eq!(syscall_name(60), Some("exit"));
        assert_eq!(syscall_name(231), Some("exit_group"));
        assert_eq!(syscall_name(257), Some("openat"));
        assert_eq!(syscall_name(437), Some("openat2"));
        assert_eq!(syscall_name(u32::MAX), None);
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("openat"), Some(257));
        assert_eq!(syscall_number("openat2"), Some(437));
        assert_eq!(syscall_number("__NR_read"), None);
        assert_eq!(syscall_number("no_such_syscall"), None);
        assert_eq!(syscall_number(""), None);
    }

    #[test]
    fn consts() {
        assert_eq!(SYS_OPEN, 2);
        assert_eq!(SYS_OPENAT, 257);
        assert_eq!(SYS_OPENAT2, 437);
        assert_eq!(SYS_EXIT, 60);
        assert_eq!(SYS_EXIT_GROUP, 231);
        assert_eq!(SYS_GETPPID, 110);
    }

    #[test]
    fn tables_are_sorted_and_consistent() {
        assert!(BY_NUMBER.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(BY_NAME.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(BY_NUMBER.len(), BY_NAME.len());
        for &(nr, name) in BY_NUMBER {
            assert_eq!(syscall_name(nr), Some(name));
            assert_eq!(syscall_number(name), Some(nr));
        }
    }
}
"""

ERRNO_TESTS = """\
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers() {
        assert_eq!(errno_name(0), None);
        assert_eq!(errno_name(1), Some("EPERM"));
        assert_eq!(errno_name(2), Some("ENOENT"));
        assert_eq!(errno_name(11), Some("EAGAIN"));
        assert_eq!(errno_name(13), Some("EACCES"));
        assert_eq!(errno_name(35), Some("EDEADLK"));
        assert_eq!(errno_name(110), Some("ETIMEDOUT"));
        assert_eq!(errno_name(u32::MAX), None);
        assert_eq!(errno_number("ENOENT"), Some(2));
        assert_eq!(errno_number("EAGAIN"), Some(11));
        assert_eq!(errno_number("EACCES"), Some(13));
        assert_eq!(errno_number("ECONNREFUSED"), Some(111));
        // Aliases are not in the table.
        assert_eq!(errno_number("EWOULDBLOCK"), None);
        assert_eq!(errno_number("EDEADLOCK"), None);
        assert_eq!(errno_number("enoent"), None);
    }

    #[test]
    fn tables_are_sorted_and_consistent() {
        assert!(BY_NUMBER.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(BY_NAME.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(BY_NUMBER.len(), BY_NAME.len());
        for &(errno, name) in BY_NUMBER {
            assert_eq!(errno_name(errno), Some(name));
            assert_eq!(errno_number(name), Some(errno));
        }
    }
}
"""


def parse_defines(paths, pattern):
    """Return (name, number) pairs in header order; the first name seen for
    a number wins, so aliases defined later (or as other macros) are skipped."""
    seen_numbers = set()
    seen_names = set()
    entries = []
    for path in paths:
        for line in path.read_text().splitlines():
            match = pattern.match(line)
            if not match:
                continue
            name, number = match.group(1), int(match.group(2))
            if number in seen_numbers or name in seen_names:
                continue
            seen_numbers.add(number)
            seen_names.add(name)
            entries.append((name, number))
    if not entries:
        sys.exit(f"gen-tables: no definitions found in {', '.join(map(str, paths))}")
    return entries


def header_line(sources):
    names = ", ".join(str(p) for p in sources)
    return (
        "//! Generated by scripts/gen-tables.py from the Linux uapi headers; "
        "do not edit by hand.\n"
        f"//!\n//! Source: {names}.\n"
    )


def tables(entries, item):
    """Render the BY_NUMBER and BY_NAME tables for (name, number) entries."""
    out = [f"/// Every known {item} as `(number, name)`, sorted by number.\n"]
    out.append("static BY_NUMBER: &[(u32, &str)] = &[\n")
    for name, number in sorted(entries, key=lambda e: e[1]):
        out.append(f'    ({number}, "{name}"),\n')
    out.append("];\n\n")
    out.append(f"/// Every known {item} as `(name, number)`, sorted by name.\n")
    out.append("static BY_NAME: &[(&str, u32)] = &[\n")
    # Python orders ASCII strings bytewise, like Rust's `str` ordering.
    for name, number in sorted(entries):
        out.append(f'    ("{name}", {number}),\n')
    out.append("];\n")
    return "".join(out)


def lookups(name_fn, number_fn, arg, doc_name, doc_number):
    return f"""
/// {doc_name}
pub fn {name_fn}({arg}: u32) -> Option<&'static str> {{
    BY_NUMBER
        .binary_search_by_key(&{arg}, |&(number, _)| number)
        .ok()
        .and_then(|index| BY_NUMBER.get(index))
        .map(|&(_, name)| name)
}}

/// {doc_number}
pub fn {number_fn}(name: &str) -> Option<u32> {{
    BY_NAME
        .binary_search_by_key(&name, |&(known, _)| known)
        .ok()
        .and_then(|index| BY_NAME.get(index))
        .map(|&(_, number)| number)
}}
"""


def render_syscalls():
    entries = parse_defines([UNISTD_HEADER], SYSCALL_DEFINE)
    numbers = dict(entries)
    out = [header_line([UNISTD_HEADER])]
    out.append("//!\n//! x86_64 Linux system call numbers and names.\n\n")
    for const, name in SYSCALL_CONSTS:
        if name not in numbers:
            sys.exit(f"gen-tables: __NR_{name} missing from {UNISTD_HEADER}")
        out.append(f"/// x86_64 number of the `{name}` system call.\n")
        out.append(f"pub const {const}: u32 = {numbers[name]};\n")
    out.append("\n")
    out.append(tables(entries, "system call"))
    out.append(
        lookups(
            "syscall_name",
            "syscall_number",
            "nr",
            "Returns the name (without `__NR_`) of x86_64 system call `nr`, "
            'e.g. 257 -> `"openat"`.',
            "Returns the x86_64 number of the system call called `name` "
            '(without `__NR_`), e.g. `"openat"` -> 257.',
        )
    )
    out.append("\n")
    out.append(SYSCALL_TESTS)
    return "".join(out)


def render_errnos():
    entries = parse_defines(ERRNO_HEADERS, ERRNO_DEFINE)
    out = [header_line(ERRNO_HEADERS)]
    out.append("//!\n//! Linux errno numbers and their canonical names ")
    out.append("(aliases such as `EWOULDBLOCK` are omitted).\n\n")
    out.append(tables(entries, "errno"))
    out.append(
        lookups(
            "errno_name",
            "errno_number",
            "errno",
            'Returns the canonical name of a (positive) errno, e.g. 2 -> `"ENOENT"`.',
            'Returns the number of the errno called `name`, e.g. `"ENOENT"` -> 2; '
            "aliases are not recognised.",
        )
    )
    out.append("\n")
    out.append(ERRNO_TESTS)
    return "".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the generated files are out of date",
    )
    args = parser.parse_args()

    outputs = {
        OUT_DIR / "syscall_names.rs": render_syscalls(),
        OUT_DIR / "errno_names.rs": render_errnos(),
    }
    stale = []
    for path, text in outputs.items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    if args.check and stale:
        for path in stale:
            print(f"out of date: {path.relative_to(REPO_ROOT)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
