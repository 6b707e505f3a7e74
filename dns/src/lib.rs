//! Skiff's cluster DNS, run by `skiff server`.
//!
//! Pods find Services by name: `web.default.svc.cluster.local` answers with the Service's
//! ClusterIP (the ready pods' addresses for a headless Service), SRV records name its ports,
//! `10-244-1-5.default.pod.cluster.local` answers with `10.244.1.5`. The data comes from
//! informers on Services and EndpointSlices, so answers follow the cluster within a watch
//! event; names outside the cluster domain go to the host's resolvers or get NXDOMAIN.
//!
//! Layout: [`records`] distils API objects into what DNS needs, [`resolve`] is the pure
//! name → answer logic, [`view`] reads the informer caches, [`handler`] speaks the wire format
//! (through the hickory-dns crates), [`upstream`] forwards outside names, [`kube_dns`] keeps
//! the `kube-system/kube-dns` Service pods reach the server through, and [`serve`] ties them
//! together.

pub mod error;
pub mod handler;
pub mod kube_dns;
pub mod records;
pub mod resolve;
pub mod serve;
pub mod upstream;
pub mod view;

pub use error::DnsError;
/// The hickory-dns wire types (names, queries, messages), for clients of this crate.
pub use hickory_proto as proto;
pub use serve::{DnsConfig, Sockets, run};
