//! CPU time spent in goroscope's own BPF programs (placeholder: being written).
