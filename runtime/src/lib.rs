//! Shared pieces of Skiff.

pub mod selector;
