//! Shared pieces of Skiff.
