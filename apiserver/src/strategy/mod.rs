//! Per-kind strategies (to be written).
