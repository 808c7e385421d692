//! Symbol caching for the health model: every distinct pc is symbolized once per tracker
//! lifetime, every distinct location and name is interned to a `u32`, and the blocking frame of a
//! stack is chosen from cached per-location classes, so per-goroutine work is a few hash lookups
//! on numbers.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::snapshot::{CodeLocation, Symbolizer};

/// Id meaning "unknown" for interned locations and strings.
pub(crate) const NONE: u32 = u32::MAX;

/// A small multiplicative hasher (FxHash) for numeric keys: much cheaper than SipHash, and the
/// keys (goids, pcs, interned ids) are not attacker-chosen.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.hash = (self.hash.rotate_left(5) ^ i).wrapping_mul(SEED);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown uses the top 7 bits as tags and the low bits as
        // the bucket index.
        self.hash ^ (self.hash >> 29)
    }
}

/// A `HashMap` using [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// How a frame's function ranks as a blocking frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameClass {
    /// The program's own code: package `main`, a package of one of the binary's modules, or a
    /// package path whose first element contains a dot (`github.com/…`).
    User,
    /// The standard library outside the runtime (e.g. `sync`, `net`, `time`).
    Library,
    /// `runtime.*`, `runtime/internal/*`, `internal/*`.
    Runtime,
}

/// The package path of a fully qualified Go function name (`net/http.(*conn).serve` →
/// `net/http`). Type arguments may contain other packages' paths; only the part before them names
/// the function's own package.
pub(crate) fn package_of(function: &str) -> &str {
    let name = function.split('[').next().unwrap_or(function);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let package_end = name[last_slash..]
        .find('.')
        .map_or(name.len(), |i| last_slash + i);
    &name[..package_end]
}

/// A package path as function symbols spell it: the dots of its last element escaped as `%2e`.
pub(crate) fn symbol_form(path: &str) -> String {
    let last = path.rfind('/').map_or(0, |i| i + 1);
    format!("{}{}", &path[..last], path[last..].replace('.', "%2e"))
}

/// The class of a fully qualified function name; `modules` in [`symbol_form`].
fn classify(function: &str, modules: &[String]) -> FrameClass {
    let package = package_of(function);
    let first_element = package.split('/').next().unwrap_or(package);
    let in_module = |module: &String| {
        package
            .strip_prefix(module.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if package == "main" || first_element.contains('.') || modules.iter().any(in_module) {
        FrameClass::User
    } else if package == "runtime"
        || package.starts_with("runtime/internal/")
        || first_element == "internal"
    {
        FrameClass::Runtime
    } else {
        FrameClass::Library
    }
}

/// True for the functions a goroutine waiting for a `sync.Mutex` or `sync.RWMutex` sits in
/// (before Go 1.20 such waits are only called `semacquire`; from Go 1.24 the mutex lives in
/// `internal/sync`).
fn is_lock_function(function: &str) -> bool {
    let method = function
        .strip_prefix("sync.")
        .or_else(|| function.strip_prefix("internal/sync."));
    matches!(
        method,
        Some(
            "(*Mutex).Lock"
                | "(*Mutex).lockSlow"
                | "(*RWMutex).Lock"
                | "(*RWMutex).RLock"
                | "(*RWMutex).rLockSlow"
        )
    )
}

/// What a stack says about where and how its goroutine waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockingFrame {
    /// Interned location of the blocking frame, [`NONE`] when no pc symbolizes.
    pub(crate) location: u32,
    /// True when the goroutine waits inside a mutex or RWMutex lock call.
    pub(crate) lock_wait: bool,
}

/// Interned strings, `u32` ids.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<String, u32>,
    values: Vec<String>,
}

impl Interner {
    pub(crate) fn intern(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(value.to_owned());
        self.ids.insert(value.to_owned(), id);
        id
    }

    /// The string for `id`, empty for [`NONE`] or an unknown id.
    pub(crate) fn get(&self, id: u32) -> &str {
        self.values.get(id as usize).map_or("", String::as_str)
    }
}

/// Caches of everything symbolized so far.
#[derive(Debug, Default)]
pub(crate) struct SymbolCache {
    /// Module paths of the target (main module and dependencies): their packages are user code.
    modules: Vec<String>,
    /// Interned locations, their classes and whether they are lock calls, by location id.
    locations: Vec<CodeLocation>,
    classes: Vec<FrameClass>,
    locks: Vec<bool>,
    location_ids: HashMap<CodeLocation, u32>,
    /// For each return address symbolized so far: a range of `frame_ids` (innermost first).
    pc_frames: FxHashMap<u64, (u32, u32)>,
    frame_ids: Vec<u32>,
    /// Start functions by `start_pc`.
    start_functions: FxHashMap<u64, u32>,
    /// Interned function and wait-reason names.
    pub(crate) strings: Interner,
}

impl SymbolCache {
    /// A cache that counts the packages of `modules` (module paths) as user code.
    pub(crate) fn with_modules(modules: &[String]) -> SymbolCache {
        SymbolCache {
            modules: modules.iter().map(|module| symbol_form(module)).collect(),
            ..SymbolCache::default()
        }
    }

    fn intern_location(&mut self, location: CodeLocation) -> u32 {
        if let Some(&id) = self.location_ids.get(&location) {
            return id;
        }
        let id = self.locations.len() as u32;
        self.classes
            .push(classify(&location.function, &self.modules));
        self.locks.push(is_lock_function(&location.function));
        self.locations.push(location.clone());
        self.location_ids.insert(location, id);
        id
    }

    /// Location ids of the frames at return address `pc` (innermost inlined first).
    fn frames_at_return(&mut self, pc: u64, symbolizer: &dyn Symbolizer) -> (u32, u32) {
        if let Some(&range) = self.pc_frames.get(&pc) {
            return range;
        }
        let start = self.frame_ids.len() as u32;
        if pc != 0 {
            for location in symbolizer.frames_at(pc - 1) {
                let id = self.intern_location(location);
                self.frame_ids.push(id);
            }
        }
        let range = (start, self.frame_ids.len() as u32 - start);
        self.pc_frames.insert(pc, range);
        range
    }

    /// The location of a `go` statement as Go's tracebacks print it ("created by"): the function
    /// containing `creation_pc - 1` (the physical one when the statement was inlined) at the
    /// innermost file and line.
    pub(crate) fn creation_site(&mut self, creation_pc: u64, symbolizer: &dyn Symbolizer) -> u32 {
        let (start, len) = self.frames_at_return(creation_pc, symbolizer);
        if len == 0 {
            return NONE;
        }
        let innermost = self.frame_ids.get(start as usize).copied().unwrap_or(NONE);
        let physical = self
            .frame_ids
            .get((start + len - 1) as usize)
            .copied()
            .unwrap_or(NONE);
        if innermost == physical {
            return innermost;
        }
        // A `go` statement in an inlined call: Go's "created by" names the function the code
        // was compiled into, at the inlined statement's file and line.
        let mut site = self.location(innermost);
        site.function = self.location(physical).function;
        self.intern_location(site)
    }

    /// The interned name of the function a goroutine starting at `start_pc` runs (the callee of
    /// a `go` statement wrapper).
    pub(crate) fn start_function(&mut self, start_pc: u64, symbolizer: &dyn Symbolizer) -> u32 {
        if let Some(&id) = self.start_functions.get(&start_pc) {
            return id;
        }
        let id = match symbolizer.start_function(start_pc) {
            Some(name) => self.strings.intern(&name),
            None => NONE,
        };
        self.start_functions.insert(start_pc, id);
        id
    }

    /// The blocking frame of a stack (innermost pc first): the first user-code frame walking
    /// outwards through inlined frames, else the first frame outside the runtime, else the
    /// innermost frame; with whether a mutex lock call lies on the way there.
    pub(crate) fn blocking_frame(
        &mut self,
        stack: &[u64],
        symbolizer: &dyn Symbolizer,
    ) -> BlockingFrame {
        let mut first_library = NONE;
        let mut innermost = NONE;
        let mut lock_wait = false;
        for &pc in stack {
            let (start, len) = self.frames_at_return(pc, symbolizer);
            let range = start as usize..(start + len) as usize;
            for &id in self.frame_ids.get(range).unwrap_or(&[]) {
                lock_wait |= self.locks.get(id as usize).copied().unwrap_or(false);
                match self.classes.get(id as usize) {
                    Some(FrameClass::User) => {
                        return BlockingFrame {
                            location: id,
                            lock_wait,
                        }
                    }
                    Some(FrameClass::Library) if first_library == NONE => first_library = id,
                    _ => {}
                }
                if innermost == NONE {
                    innermost = id;
                }
            }
        }
        BlockingFrame {
            location: if first_library != NONE {
                first_library
            } else {
                innermost
            },
            lock_wait,
        }
    }

    /// Location ids of every frame of a stack (innermost pc first), inlined calls expanded.
    pub(crate) fn stack_locations(
        &mut self,
        stack: &[u64],
        symbolizer: &dyn Symbolizer,
    ) -> Vec<u32> {
        let mut ids = Vec::new();
        for &pc in stack {
            let (start, len) = self.frames_at_return(pc, symbolizer);
            let range = start as usize..(start + len) as usize;
            ids.extend_from_slice(self.frame_ids.get(range).unwrap_or(&[]));
        }
        ids
    }

    /// The location for `id`, or an empty location (function `""`, line 0) for [`NONE`].
    pub(crate) fn location(&self, id: u32) -> CodeLocation {
        self.locations
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| CodeLocation {
                function: String::new(),
                file: String::new(),
                line: 0,
            })
    }
}

/// Hashes a value with [`FxHasher`] (for tests and key checks).
#[cfg(test)]
pub(crate) fn fx_hash<T: std::hash::Hash>(value: &T) -> u64 {
    let mut hasher = FxHasher::default();
    value.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let classify = |name: &str| classify(name, &[]);
        assert_eq!(classify("main.main.func1"), FrameClass::User);
        assert_eq!(classify("main.(*T).Run"), FrameClass::User);
        assert_eq!(classify("github.com/a/b.(*C).Serve"), FrameClass::User);
        assert_eq!(classify("example.com/x.F"), FrameClass::User);
        assert_eq!(classify("gopkg.in/yaml.v3.Unmarshal"), FrameClass::User);
        assert_eq!(classify("runtime.gopark"), FrameClass::Runtime);
        assert_eq!(
            classify("runtime/internal/atomic.Load"),
            FrameClass::Runtime
        );
        assert_eq!(classify("internal/poll.(*FD).Read"), FrameClass::Runtime);
        assert_eq!(classify("sync.(*WaitGroup).Wait"), FrameClass::Library);
        assert_eq!(classify("net/http.(*conn).serve"), FrameClass::Library);
        assert_eq!(classify("time.Sleep"), FrameClass::Library);
        assert_eq!(classify("sync.F[github.com/x.T]"), FrameClass::Library);
        assert_eq!(classify("maintenance.F"), FrameClass::Library);
        // A module path without a dot: its packages are the program's, the standard library's
        // package of the same first element is not.
        let modules = ["leaky".to_owned()];
        assert_eq!(
            super::classify("leaky/internal/pool.(*P).Get", &modules),
            FrameClass::User
        );
        assert_eq!(super::classify("leaky.F", &modules), FrameClass::User);
        assert_eq!(
            super::classify("leakyish/x.F", &modules),
            FrameClass::Library
        );
        assert_eq!(package_of("net/http.(*conn).serve"), "net/http");
        // Symbol names escape the dots of a package path's last element.
        assert_eq!(
            package_of("gopkg.in/yaml%2ev3.Unmarshal"),
            "gopkg.in/yaml%2ev3"
        );
        let modules = [symbol_form("myapp.v2")];
        assert_eq!(
            super::classify("myapp%2ev2/store.Open", &modules),
            FrameClass::User
        );
    }

    #[test]
    fn lock_functions() {
        assert!(is_lock_function("sync.(*Mutex).lockSlow"));
        assert!(is_lock_function("internal/sync.(*Mutex).Lock"));
        assert!(is_lock_function("sync.(*RWMutex).RLock"));
        assert!(!is_lock_function("sync.(*WaitGroup).Wait"));
        assert!(!is_lock_function("sync.(*Cond).Wait"));
    }

    #[test]
    fn hasher_spreads_small_keys() {
        assert_ne!(fx_hash(&1u64), fx_hash(&2u64));
        assert_ne!(fx_hash(&(1u64, 2u64)), fx_hash(&(2u64, 1u64)));
    }
}
