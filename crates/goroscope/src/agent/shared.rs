//! What the collection loop hands to the HTTP side: the latest exposition and whether the
//! first collection is done. Swapped whole under a short lock; rendering happens outside it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use goroscope_export::{Exposition, Format};

/// State shared between the collection loop and the HTTP server.
#[derive(Default)]
pub struct Shared {
    latest: RwLock<Arc<Exposition>>,
    ready: AtomicBool,
}

impl Shared {
    /// Publishes a complete exposition; the agent is ready from the first one on.
    pub fn publish(&self, exposition: Exposition) {
        let exposition = Arc::new(exposition);
        match self.latest.write() {
            Ok(mut latest) => *latest = exposition,
            Err(poisoned) => *poisoned.into_inner() = exposition,
        }
        self.ready.store(true, Ordering::Release);
    }

    /// True once a collection has been published.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The latest exposition in `format`.
    pub fn render(&self, format: Format) -> Vec<u8> {
        let latest = match self.latest.read() {
            Ok(latest) => Arc::clone(&latest),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        let mut body = Vec::with_capacity(64 * 1024);
        latest.render(format, &mut body);
        body
    }
}
