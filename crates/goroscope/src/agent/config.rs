//! The agent's configuration file (placeholder: being written).
