//! The Skiff node agent: runs pods through a container runtime and programs Services on the node.
//!
//! Not built yet (issue 6); the crate exists so the workspace has its final shape.
