//! What the unwinder needs to know about the function at a run-time pc of the target — the
//! stack-pointer delta from the pclntab's `pcsp` table, and whether the stack ends there — decoded
//! once per distinct pc and cached (a process parks its goroutines at a few hundred pcs).

use std::sync::Arc;

use goroscope_gobin::pclntab::Pclntab;

use crate::fasthash::FastMap;

/// Cached pcs kept before the cache starts over (garbage pcs from torn stacks must not grow it
/// without bound).
const MAX_CACHED: usize = 1 << 18;

/// How to step out of the frame at one pc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Bytes from the stack pointer to the return address slot.
    pub(crate) sp_delta: u64,
    /// Nothing to unwind beyond this frame: the stack's top (`goexit`) or a function that sets
    /// SP arbitrarily.
    pub(crate) last: bool,
}

/// The layouts of a target's functions, by run-time pc.
pub(crate) struct FrameTable {
    /// `None` in unit tests, which fill the cache themselves.
    pclntab: Option<Arc<Pclntab>>,
    bias: u64,
    cache: FastMap<u64, Option<Layout>>,
}

impl FrameTable {
    /// A table for a process whose executable is loaded `bias` bytes from its linked addresses.
    pub(crate) fn new(pclntab: Arc<Pclntab>, bias: u64) -> FrameTable {
        FrameTable {
            pclntab: Some(pclntab),
            bias,
            cache: FastMap::default(),
        }
    }

    /// A table that knows exactly `layouts` (by run-time pc), for tests.
    #[cfg(test)]
    pub(crate) fn with_layouts(layouts: &[(u64, Layout)]) -> FrameTable {
        FrameTable {
            pclntab: None,
            bias: 0,
            cache: layouts.iter().map(|&(pc, l)| (pc, Some(l))).collect(),
        }
    }

    /// The layout of the frame whose saved pc (a return address, or a parked goroutine's resume
    /// pc) is `pc`; `None` when `pc` is in no Go function (C code, garbage).
    pub(crate) fn layout(&mut self, pc: u64) -> Option<Layout> {
        if let Some(layout) = self.cache.get(&pc) {
            return *layout;
        }
        let layout = self
            .pclntab
            .as_ref()
            .and_then(|table| table.frame_layout(pc.wrapping_sub(self.bias)))
            .map(|found| Layout {
                sp_delta: u64::from(found.sp_delta),
                last: found.top_frame || found.sp_write,
            });
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.cache.insert(pc, layout);
        layout
    }
}
