//! TCP statistics (placeholder: being written).
