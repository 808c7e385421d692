//! Prometheus text and OpenMetrics exposition (placeholder: being written).
