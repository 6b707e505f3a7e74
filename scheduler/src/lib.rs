//! The Skiff scheduler: binds pending pods to fitting nodes (filter, score, bind).
//!
//! Not built yet (issue 4); the crate exists so the workspace has its final shape.
