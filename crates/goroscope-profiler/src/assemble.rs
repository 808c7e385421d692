//! Building a [`Profile`] from raw stacks: every distinct (address space, address) becomes one
//! location, every file region one mapping, and addresses are symbolized in batches per file
//! (and once for the kernel) so a large profile costs a pass over its distinct addresses.

use std::collections::{HashMap, HashSet};

use goroscope_model::profile::{Label, Line, Location, Mapping, Profile, Sample};

use crate::symbols::{FileKey, Symbols};

/// Where the kernel's pseudo-mapping starts (the top half of the x86-64 address space).
const KERNEL_START: u64 = 0xffff_8000_0000_0000;

/// One stack and what it weighs, before symbolization.
#[derive(Clone, Debug, Default)]
pub struct RawStack {
    /// The process whose address space `user` is in.
    pub pid: u32,
    /// User-space addresses, innermost first: the first is where the thread was (unless
    /// `user_leaf_is_return`), the others return addresses.
    pub user: Vec<u64>,
    /// True when the first user address is a return address too (a parked goroutine's saved
    /// pc), false when it is an interrupted instruction.
    pub user_leaf_is_return: bool,
    /// Kernel addresses, innermost first, likewise.
    pub kernel: Vec<u64>,
    /// Frames to put above the stack's root (e.g. `[chan receive]`), root first.
    pub roots: Vec<String>,
    /// One value per sample type.
    pub values: Vec<i64>,
    /// The sample's labels.
    pub labels: Vec<Label>,
}

/// An address space: a process, the kernel, or none (synthetic frames).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Space {
    Kernel,
    User(u32),
}

/// What a location is waiting for before it can be symbolized.
enum Pending {
    /// Kernel address (lookup address).
    Kernel(u64),
    /// File offset in a file.
    File(FileKey, u64),
    /// Nothing to resolve.
    None,
}

/// Collects stacks into a profile.
pub struct Assembler<'s> {
    symbols: &'s mut Symbols,
    profile: Profile,
    locations: HashMap<(Space, u64, bool), usize>,
    synthetic: HashMap<String, usize>,
    mappings: HashMap<(Space, u64), usize>,
    /// The profile mappings of a process's own executable.
    executables: HashSet<usize>,
    pending: Vec<Pending>,
    samples: HashMap<(Vec<usize>, Vec<Label>), usize>,
}

impl<'s> Assembler<'s> {
    /// Starts filling `profile` (kind, types, period and times already set).
    pub fn new(symbols: &'s mut Symbols, profile: Profile) -> Assembler<'s> {
        Assembler {
            symbols,
            profile,
            locations: HashMap::new(),
            synthetic: HashMap::new(),
            mappings: HashMap::new(),
            executables: HashSet::new(),
            pending: Vec::new(),
            samples: HashMap::new(),
        }
    }

    /// Adds one stack (merged with an identical stack and label set already added).
    pub fn add(&mut self, stack: RawStack) {
        let mut locations = Vec::with_capacity(stack.kernel.len() + stack.user.len() + 1);
        for (i, &address) in stack.kernel.iter().enumerate() {
            locations.push(self.location(Space::Kernel, address, i == 0));
        }
        // A sample taken in the kernel has its user stack's first address at a syscall's return
        // point, not at an interrupted instruction.
        let user_leaf = stack.kernel.is_empty() && !stack.user_leaf_is_return;
        for (i, &address) in stack.user.iter().enumerate() {
            locations.push(self.location(Space::User(stack.pid), address, user_leaf && i == 0));
        }
        for root in stack.roots.iter().rev() {
            locations.push(self.synthetic_location(root));
        }
        let key = (locations, stack.labels);
        match self.samples.get(&key) {
            Some(&index) => {
                let sample = &mut self.profile.samples[index];
                for (sum, value) in sample.values.iter_mut().zip(&stack.values) {
                    *sum += value;
                }
            }
            None => {
                let (locations, labels) = key.clone();
                self.samples.insert(key, self.profile.samples.len());
                self.profile.samples.push(Sample {
                    locations,
                    values: stack.values,
                    labels,
                });
            }
        }
    }

    /// Symbolizes every location and returns the profile.
    pub fn finish(mut self) -> Profile {
        let mut hidden = vec![false; self.profile.locations.len()];
        // Kernel addresses, in one batch.
        let kernel: Vec<(usize, u64)> = self
            .pending
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Pending::Kernel(address) => Some((i, *address)),
                _ => None,
            })
            .collect();
        if !kernel.is_empty() {
            let addresses: Vec<u64> = kernel.iter().map(|&(_, a)| a).collect();
            let lines = self.symbols.resolve_kernel(&addresses);
            for ((index, _), lines) in kernel.into_iter().zip(lines) {
                self.profile.locations[index].lines = lines;
            }
        }
        // File offsets, one batch per file.
        let mut by_file: HashMap<FileKey, Vec<(usize, u64)>> = HashMap::new();
        for (i, p) in self.pending.iter().enumerate() {
            if let Pending::File(file, offset) = p {
                by_file.entry(*file).or_default().push((i, *offset));
            }
        }
        for (file, wanted) in by_file {
            let offsets: Vec<u64> = wanted.iter().map(|&(_, o)| o).collect();
            let resolved = self.symbols.resolve_file(file, &offsets);
            for ((index, _), resolved) in wanted.into_iter().zip(resolved) {
                hidden[index] = resolved.hidden;
                self.profile.locations[index].lines = resolved.lines;
            }
        }
        for location in &self.profile.locations {
            let (Some(mapping), false) = (location.mapping, location.lines.is_empty()) else {
                continue;
            };
            if let Some(mapping) = self.profile.mappings.get_mut(mapping) {
                mapping.has_functions = true;
                mapping.has_filenames |= location.lines.iter().any(|l| !l.file.is_empty());
                mapping.has_line_numbers |= location.lines.iter().any(|l| l.line != 0);
                mapping.has_inline_frames = true;
            }
        }
        if hidden.iter().any(|&h| h) {
            for sample in &mut self.profile.samples {
                sample.locations.retain(|&l| !hidden[l]);
            }
        }
        programs_first(&mut self.profile, &self.executables);
        self.profile
    }

    /// The location of `address` in `space`, created on first sight.
    fn location(&mut self, space: Space, address: u64, leaf: bool) -> usize {
        if let Some(&index) = self.locations.get(&(space, address, leaf)) {
            return index;
        }
        // A return address is just past the call: look up the call itself.
        let lookup = if leaf {
            address
        } else {
            address.saturating_sub(1)
        };
        let (mapping, pending) = match space {
            Space::Kernel => (Some(self.kernel_mapping()), Pending::Kernel(lookup)),
            Space::User(pid) => self.user_mapping(pid, lookup),
        };
        let index = self.profile.locations.len();
        self.profile.locations.push(Location {
            address,
            mapping,
            lines: Vec::new(),
        });
        self.pending.push(pending);
        self.locations.insert((space, address, leaf), index);
        index
    }

    /// A location with no address standing for `name`.
    fn synthetic_location(&mut self, name: &str) -> usize {
        if let Some(&index) = self.synthetic.get(name) {
            return index;
        }
        let index = self.profile.locations.len();
        self.profile.locations.push(Location {
            address: 0,
            mapping: None,
            lines: vec![Line {
                function: name.to_string(),
                ..Line::default()
            }],
        });
        self.pending.push(Pending::None);
        self.synthetic.insert(name.to_string(), index);
        index
    }

    fn kernel_mapping(&mut self) -> usize {
        let profile = &mut self.profile;
        *self.mappings.entry((Space::Kernel, 0)).or_insert_with(|| {
            profile.mappings.push(Mapping {
                start: KERNEL_START,
                limit: u64::MAX,
                file: "[kernel.kallsyms]".into(),
                ..Mapping::default()
            });
            profile.mappings.len() - 1
        })
    }

    /// The profile mapping holding `lookup` in process `pid`, and what resolving it needs.
    fn user_mapping(&mut self, pid: u32, lookup: u64) -> (Option<usize>, Pending) {
        self.symbols.capture(pid);
        let space = self.symbols.space(pid);
        let found = space
            .partition_point(|m| m.mapping.start <= lookup)
            .checked_sub(1)
            .and_then(|i| space.get(i))
            .filter(|m| lookup < m.mapping.end);
        let Some(found) = found else {
            return (None, Pending::None);
        };
        let (start, end, offset, path, file, executable) = (
            found.mapping.start,
            found.mapping.end,
            found.mapping.offset,
            found.mapping.path.clone(),
            found.file,
            found.executable,
        );
        let build_id = self.symbols.build_id(file).to_string();
        let profile = &mut self.profile;
        let index = *self
            .mappings
            .entry((Space::User(pid), start))
            .or_insert_with(|| {
                profile.mappings.push(Mapping {
                    start,
                    limit: end,
                    offset,
                    file: path,
                    build_id,
                    ..Mapping::default()
                });
                profile.mappings.len() - 1
            });
        if executable {
            self.executables.insert(index);
        }
        let pending = match file {
            Some(file) => Pending::File(file, lookup - start + offset),
            None => Pending::None,
        };
        (Some(index), pending)
    }
}

/// Orders the mappings for pprof, which takes the first for the profiled program (`go tool pprof`
/// prints it as `File:`, its web view as the title): the profiled processes' own executables
/// first, then libraries and the vdso, the kernel's pseudo-mapping last. In the order stacks were
/// added, the first was whatever the first stack's innermost frame was in: the kernel, the vdso,
/// libc. Locations are renumbered.
fn programs_first(profile: &mut Profile, executables: &HashSet<usize>) {
    let rank = |index: usize, mapping: &Mapping| {
        if executables.contains(&index) {
            0
        } else if mapping.start == KERNEL_START && mapping.limit == u64::MAX {
            2
        } else {
            1
        }
    };
    let mut order: Vec<usize> = (0..profile.mappings.len()).collect();
    order.sort_by_key(|&index| rank(index, &profile.mappings[index]));
    if order.iter().enumerate().all(|(new, &old)| new == old) {
        return;
    }
    let mut new_index = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut old_mappings: Vec<Option<Mapping>> = std::mem::take(&mut profile.mappings)
        .into_iter()
        .map(Some)
        .collect();
    profile.mappings = order
        .iter()
        .filter_map(|&old| old_mappings[old].take())
        .collect();
    for location in &mut profile.locations {
        if let Some(index) = location.mapping.as_mut() {
            *index = new_index[*index];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goroscope_model::profile::ProfileKind;
    use std::path::Path;

    /// A process id no process has (pid_max is at most 2^22).
    const NO_PROCESS: u32 = 1 << 30;

    fn stack(user: &[u64], kernel: &[u64], roots: &[&str], value: i64) -> RawStack {
        RawStack {
            pid: NO_PROCESS,
            user: user.to_vec(),
            user_leaf_is_return: false,
            kernel: kernel.to_vec(),
            roots: roots.iter().map(|r| r.to_string()).collect(),
            values: vec![1, value],
            labels: vec![Label::number("goid", 7)],
        }
    }

    #[test]
    fn identical_stacks_merge_and_roots_sit_above_the_user_frames() {
        let mut symbols = Symbols::new(Path::new("/nonexistent-proc"));
        let mut assembler = Assembler::new(&mut symbols, Profile::new(ProfileKind::Wall));
        assembler.add(stack(&[0x1000, 0x2000], &[], &["[chan receive]"], 10));
        assembler.add(stack(&[0x1000, 0x2000], &[], &["[chan receive]"], 5));
        assembler.add(stack(&[0x1000, 0x3000], &[], &["[chan receive]"], 1));
        let profile = assembler.finish();
        assert_eq!(profile.samples.len(), 2);
        assert_eq!(profile.samples[0].values, vec![2, 15]);
        let root = *profile.samples[0].locations.last().unwrap();
        assert_eq!(profile.locations[root].lines[0].function, "[chan receive]");
        // Both stacks share their leaf location and the root.
        assert_eq!(
            profile.samples[0].locations[0],
            profile.samples[1].locations[0]
        );
        assert_eq!(
            profile.samples[0].locations[2],
            profile.samples[1].locations[2]
        );
        // A process with no mappings: addresses stay, unsymbolized and unmapped.
        let leaf = &profile.locations[profile.samples[0].locations[0]];
        assert_eq!(
            (leaf.address, leaf.mapping, leaf.lines.len()),
            (0x1000, None, 0)
        );
    }

    #[test]
    fn kernel_frames_are_symbolized_from_kallsyms_and_their_mapping_goes_last() {
        let kallsyms = std::fs::read_to_string("/proc/kallsyms").expect("reading /proc/kallsyms");
        let (address, name) = kallsyms
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let address = u64::from_str_radix(fields.next()?, 16).ok()?;
                let kind = fields.next()?;
                let name = fields.next()?;
                (kind == "T" && name == "do_syscall_64").then(|| (address, name.to_string()))
            })
            .next()
            .expect("do_syscall_64 in /proc/kallsyms");
        assert_ne!(address, 0, "kallsyms hides addresses: run as root");
        let mut symbols = Symbols::new(Path::new("/proc"));
        let mut assembler = Assembler::new(&mut symbols, Profile::new(ProfileKind::Cpu));
        // As a return address: the call sits a few bytes into the function.
        let own = std::process::id();
        assembler.add(RawStack {
            pid: own,
            user: vec![stack as *const () as usize as u64],
            kernel: vec![address + 0x10, address + 0x20],
            values: vec![1, 1],
            ..RawStack::default()
        });
        let profile = assembler.finish();
        let kernel = profile.mappings.len() - 1;
        assert_eq!(profile.mappings[kernel].file, "[kernel.kallsyms]");
        let sample = &profile.samples[0];
        for &index in &sample.locations[..2] {
            let location = &profile.locations[index];
            assert_eq!(location.mapping, Some(kernel));
            assert_eq!(location.lines[0].function, name);
        }
        let user = &profile.locations[sample.locations[2]];
        assert_ne!(user.mapping, Some(kernel), "the test binary's own mapping");
    }

    fn mapping(start: u64, limit: u64, file: &str) -> Mapping {
        Mapping {
            start,
            limit,
            file: file.into(),
            ..Mapping::default()
        }
    }

    fn location(mapping: usize) -> Location {
        Location {
            address: 0,
            mapping: Some(mapping),
            lines: Vec::new(),
        }
    }

    #[test]
    fn the_programs_come_first_and_the_kernel_last() {
        let mut profile = Profile::new(goroscope_model::profile::ProfileKind::Cpu);
        profile.mappings = vec![
            mapping(KERNEL_START, u64::MAX, "[kernel.kallsyms]"),
            mapping(0x7000, 0x8000, "[vdso]"),
            mapping(0x1000, 0x2000, "/bin/a"),
            mapping(0x4000, 0x5000, "/lib/b.so"),
        ];
        profile.locations = vec![location(0), location(1), location(2), location(3)];
        programs_first(&mut profile, &HashSet::from([2]));
        let files: Vec<&str> = profile.mappings.iter().map(|m| m.file.as_str()).collect();
        assert_eq!(
            files,
            ["/bin/a", "[vdso]", "/lib/b.so", "[kernel.kallsyms]"]
        );
        let files_of_locations: Vec<&str> = profile
            .locations
            .iter()
            .filter_map(|l| profile.mappings.get(l.mapping?))
            .map(|m| m.file.as_str())
            .collect();
        assert_eq!(
            files_of_locations,
            ["[kernel.kallsyms]", "[vdso]", "/bin/a", "/lib/b.so"],
            "every location still points at its own mapping"
        );
    }
}
