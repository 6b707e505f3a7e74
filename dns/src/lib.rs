//! Skiff's cluster DNS.
pub mod records;
pub mod resolve;
