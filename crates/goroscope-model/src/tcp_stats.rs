//! TCP rows (placeholder: being written).
