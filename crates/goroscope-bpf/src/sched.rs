//! Scheduler statistics (placeholder: being written).
