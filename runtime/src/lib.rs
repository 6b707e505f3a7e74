//! Shared pieces of Skiff.
//!
//! Layered like kube-rs: [`request`] builds requests without I/O, [`config`] finds the
//! server, [`tls`] secures the connection to it, [`client`] talks HTTP, and [`informer`],
//! [`queue`], [`controller`] and [`leader`] are the watch machinery every component runs on. [`objects`] and [`selector`] are helpers
//! for the API objects themselves. [`spdy`] is the SPDY/3.1 framing and stream multiplexer
//! port forwarding speaks.
//! [`pki`] keeps the cluster CA and serving certificate, [`tls_serve`] serves HTTPS, and
//! [`join`] turns a join token into a trusted, authenticated client config.

pub mod client;
pub mod config;
pub mod controller;
pub mod error;
pub mod events;
pub mod informer;
pub mod join;
pub mod leader;
pub mod net;
pub mod objects;
pub mod pki;
pub mod queue;
pub mod request;
pub mod selector;
pub mod spdy;
pub mod tls;
pub mod tls_serve;

pub use client::{Api, Client, DeleteOutcome, WatchStream};
pub use error::{Error, Result, Status};
pub use kube_core::watch::WatchEvent;
pub use request::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, ResourceInfo, WatchParams,
};
