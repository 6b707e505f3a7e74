//! Host-side routes of the node's pod network: `unreachable` routes for the whole cluster pod
//! CIDR and the service CIDR (DESIGN.md "Network rules": blackhole or unreachable), so a
//! packet to an unassigned pod or Service address is dropped on the node instead of following
//! a default route off the machine. The node's own /24 on the bridge is more specific and
//! still wins; other nodes' /24s get more specific routes ([`super::node_routes`]).
//!
//! Why `unreachable` rather than `blackhole`: for packets the node *forwards* (from its pods)
//! the kernel drops blackholed ones silently, so a pod's connection to an unassigned address
//! hangs until its own timeout; an unreachable route answers with ICMP host-unreachable and
//! the connection fails at once. For the node's own packets both fail immediately.
//!
//! Routes are set with `ip route replace`, which is idempotent (an agent restart re-runs it).

use std::path::Path;
use std::process::Command;

use super::config::Ipv4Cidr;
use super::netns;
use crate::error::{Error, IoContext, Result};

/// The `ip` arguments installing the unreachable route for `cidr` (`replace` also turns an
/// older agent's blackhole route into one).
pub fn unreachable_args(cidr: &Ipv4Cidr) -> Vec<String> {
    ["route", "replace", "unreachable", &cidr.to_string()]
        .map(String::from)
        .to_vec()
}

/// Installs unreachable routes for `cidrs` in `node_netns` (the agent's own namespace when
/// `None`).
pub fn ensure_unreachable(cidrs: &[Ipv4Cidr], node_netns: Option<&Path>) -> Result<()> {
    for cidr in cidrs {
        run_ip(&unreachable_args(cidr), node_netns)?;
    }
    Ok(())
}

/// Runs `ip ARGS` in `netns` (the caller's own namespace when `None`) and returns its stdout;
/// a non-zero exit is an [`Error::Network`] carrying the command and its stderr.
pub fn run_ip(args: &[String], netns: Option<&Path>) -> Result<String> {
    let mut command = Command::new("ip");
    command.args(args);
    netns::run_in(&mut command, netns)?;
    let output = command
        .output()
        .context(|| format!("running ip {}", args.join(" ")))?;
    if !output.status.success() {
        return Err(Error::Network(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Deletes the node's pod bridge (the bridge plugin creates it on the first pod and never
/// removes it), for `skiff agent reset`. A bridge that does not exist is not an error.
pub fn remove_bridge(bridge: &str, node_netns: Option<&Path>) -> Result<bool> {
    let mut command = Command::new("ip");
    command.args(["link", "delete", bridge, "type", "bridge"]);
    netns::run_in(&mut command, node_netns)?;
    let output = command
        .output()
        .context(|| format!("running ip link delete {bridge}"))?;
    Ok(output.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_commands() {
        let cases = [
            ("10.244.0.0/16", "route replace unreachable 10.244.0.0/16"),
            ("10.96.0.0/12", "route replace unreachable 10.96.0.0/12"),
        ];
        for (cidr, want) in cases {
            assert_eq!(unreachable_args(&cidr.parse().unwrap()).join(" "), want);
        }
    }
}
