//! Host state readers (placeholder: being written).
