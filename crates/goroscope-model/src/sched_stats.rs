//! Scheduler rows (placeholder: being written).
