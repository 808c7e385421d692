//! Naming a goroutine the way the goroutine views do, for other views (profiles label samples
//! with it): the function it started in and the `go` statement that created it.

use super::snapshot::{CodeLocation, Symbolizer};
use super::symbols::SymbolCache;

/// Names goroutines by their `start_pc` and `creation_pc`, caching what it symbolized.
#[derive(Debug, Default)]
pub struct GoroutineNames {
    cache: SymbolCache,
}

impl GoroutineNames {
    /// An empty cache.
    pub fn new() -> GoroutineNames {
        GoroutineNames::default()
    }

    /// The function a goroutine starting at `start_pc` runs (the callee of a `go` statement
    /// wrapper), empty when no symbol covers it.
    pub fn start_function(&mut self, start_pc: u64, symbolizer: &dyn Symbolizer) -> String {
        let id = self.cache.start_function(start_pc, symbolizer);
        self.cache.strings.get(id).to_string()
    }

    /// The `go` statement that created a goroutine, as Go's "created by" prints it; `None` for
    /// the main goroutine and the runtime's own, and when no symbol covers `creation_pc`.
    pub fn creation_site(
        &mut self,
        creation_pc: u64,
        symbolizer: &dyn Symbolizer,
    ) -> Option<CodeLocation> {
        if creation_pc == 0 {
            return None;
        }
        let id = self.cache.creation_site(creation_pc, symbolizer);
        let site = self.cache.location(id);
        (!site.function.is_empty()).then_some(site)
    }
}
