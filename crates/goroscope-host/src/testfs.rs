//! Test support: a fake `/proc` or `/sys` tree in a uniquely named temporary directory, removed
//! when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A temporary directory tree for one test.
pub(crate) struct FakeTree {
    root: PathBuf,
}

impl FakeTree {
    /// A new empty tree whose name contains `label`, the pid and a counter.
    #[track_caller]
    pub(crate) fn new(label: &str) -> FakeTree {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "goroscope-host-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
        FakeTree { root }
    }

    /// The tree's root.
    pub(crate) fn path(&self) -> &Path {
        &self.root
    }

    /// Writes `contents` to `relative`, creating its directories.
    #[track_caller]
    pub(crate) fn write(&self, relative: &str, contents: &str) {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            self.mkdir_path(parent);
        }
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Creates directory `relative` and its parents.
    #[track_caller]
    pub(crate) fn mkdir(&self, relative: &str) {
        self.mkdir_path(&self.root.join(relative));
    }

    #[track_caller]
    fn mkdir_path(&self, path: &Path) {
        std::fs::create_dir_all(path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    }

    /// Makes `relative` a symbolic link to `target`, creating its directories.
    #[track_caller]
    pub(crate) fn symlink(&self, relative: &str, target: &Path) {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            self.mkdir_path(parent);
        }
        std::os::unix::fs::symlink(target, &path)
            .unwrap_or_else(|e| panic!("cannot link {}: {e}", path.display()));
    }

    /// Removes files, links or directories (with their contents).
    #[track_caller]
    pub(crate) fn remove(&self, relatives: &[&str]) {
        for relative in relatives {
            let path = self.root.join(relative);
            let result = match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
            result.unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
        }
    }
}

impl Drop for FakeTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Counts the allocations each thread makes, so a test can check a path does not allocate.
pub(crate) mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    struct Counting;

    // SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
    // const-initialized thread-local `Cell` that never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            // SAFETY: the caller's guarantees for `alloc` are passed on as they are.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's guarantees for `dealloc` are passed on as they are.
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            // SAFETY: the caller's guarantees for `realloc` are passed on as they are.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// Allocations made by the current thread so far.
    pub(crate) fn allocations() -> u64 {
        ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
    }
}
