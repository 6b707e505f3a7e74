//! The real node agent: registers the Node, renews its Lease, and drives every pod bound to
//! the node to its spec through a [`crate::cri::ContainerRuntime`].

pub mod plan;
