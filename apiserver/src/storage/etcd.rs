//! The etcd backend (to be written).
