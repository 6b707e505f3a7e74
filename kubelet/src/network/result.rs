//! CNI plugin output, parsed: success results (interfaces and IPs) and error objects.
//!
//! The raw result JSON is kept alongside (it is cached and handed back to plugins as
//! `prevResult`, which must not lose fields Skiff does not model).

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

/// An interface a plugin created or configured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Interface {
    /// Device name (`eth0`, `skiff0`, `veth…`).
    pub name: String,
    /// MAC address, when known.
    #[serde(default)]
    pub mac: String,
    /// The namespace path it lives in; empty for the node's own interfaces.
    #[serde(default)]
    pub sandbox: String,
}

/// An address assigned by a plugin.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length, e.g. `10.244.1.2/24`.
    pub address: String,
    /// Gateway, when the plugin set one.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`].
    #[serde(default)]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// The address without its prefix length.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.split('/').next()?.parse().ok()
    }
}

/// A CNI success result (spec 1.0.0 shape; 0.3.x and 0.4.0 results parse the same way).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct CniResult {
    /// The version the plugin answered in.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Interfaces created or configured.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
}

impl CniResult {
    /// Parses a result object.
    pub fn from_value(value: &Value) -> Result<Self, String> {
        Self::deserialize(value).map_err(|e| format!("malformed CNI result: {e}"))
    }

    /// The pod's IP: the first IPv4 (else any) address on the sandbox interface `ifname`;
    /// addresses of unknown interfaces count when no interface claims one.
    pub fn pod_ip(&self, ifname: &str) -> Option<IpAddr> {
        let on_pod_interface = |ip: &&IpConfig| {
            ip.interface
                .and_then(|i| self.interfaces.get(i))
                .is_some_and(|iface| iface.name == ifname && !iface.sandbox.is_empty())
        };
        let candidates: Vec<&IpConfig> = if self.ips.iter().any(|ip| on_pod_interface(&ip)) {
            self.ips.iter().filter(on_pod_interface).collect()
        } else {
            self.ips.iter().collect()
        };
        let ips: Vec<IpAddr> = candidates.iter().filter_map(|ip| ip.ip()).collect();
        ips.iter()
            .find(|ip| ip.is_ipv4())
            .or_else(|| ips.first())
            .copied()
    }
}

/// A CNI error object, written by a failing plugin to stdout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct CniError {
    /// Error code: 1-99 defined by the spec, 100+ plugin-specific.
    #[serde(default)]
    pub code: u32,
    /// Short message.
    #[serde(default)]
    pub msg: String,
    /// Longer explanation.
    #[serde(default)]
    pub details: String,
}

/// The error object in a failed plugin's stdout, if it wrote one (an object with `code` or
/// `msg`).
pub fn parse_error(stdout: &[u8]) -> Option<CniError> {
    let value: Value = serde_json::from_slice(stdout).ok()?;
    let object = value.as_object()?;
    if !object.contains_key("code") && !object.contains_key("msg") {
        return None;
    }
    CniError::deserialize(&value).ok()
}

/// What a spec-defined error code means, for messages.
pub fn describe_code(code: u32) -> &'static str {
    match code {
        1 => "incompatible CNI version",
        2 => "unsupported field in network configuration",
        3 => "container unknown or does not exist",
        4 => "invalid necessary environment variables",
        5 => "I/O failure",
        6 => "failed to decode content",
        7 => "invalid network config",
        11 => "try again later",
        _ => "plugin-specific error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bridge_result() -> Value {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "skiff0", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/skiff/netns/abc"}
            ],
            "ips": [{"interface": 2, "address": "10.244.1.5/24", "gateway": "10.244.1.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        })
    }

    #[test]
    fn pod_ip_from_results() {
        let dual = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": "/x"}],
            "ips": [
                {"interface": 0, "address": "fd00::5/64"},
                {"interface": 0, "address": "10.244.1.9/24"}
            ]
        });
        let no_interfaces = json!({"cniVersion": "0.4.0", "ips": [{"address": "10.244.1.7/24"}]});
        let host_side_only = json!({
            "interfaces": [{"name": "skiff0"}],
            "ips": [{"interface": 0, "address": "10.244.1.1/24"}]
        });
        let cases = [
            (bridge_result(), Some("10.244.1.5")),
            (dual, Some("10.244.1.9")),
            (no_interfaces, Some("10.244.1.7")),
            (host_side_only, Some("10.244.1.1")),
            (json!({"cniVersion": "1.0.0"}), None),
        ];
        for (value, want) in cases {
            let result = CniResult::from_value(&value).unwrap();
            assert_eq!(
                result.pod_ip("eth0"),
                want.map(|w| w.parse().unwrap()),
                "{value}"
            );
        }
    }

    #[test]
    fn result_fields() {
        let result = CniResult::from_value(&bridge_result()).unwrap();
        assert_eq!(result.cni_version, "1.0.0");
        assert_eq!(result.interfaces.len(), 3);
        assert_eq!(result.interfaces[2].sandbox, "/run/skiff/netns/abc");
        assert_eq!(result.ips[0].gateway, Some("10.244.1.1".parse().unwrap()));
        assert!(CniResult::from_value(&json!({"ips": "nope"})).is_err());
    }

    #[test]
    fn error_objects() {
        let cases: [(&[u8], Option<CniError>); 5] = [
            (
                br#"{"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"no subnet"}"#,
                Some(CniError {
                    code: 7,
                    msg: "invalid config".into(),
                    details: "no subnet".into(),
                }),
            ),
            (
                br#"{"code":999,"msg":"failed to allocate"}"#,
                Some(CniError {
                    code: 999,
                    msg: "failed to allocate".into(),
                    details: String::new(),
                }),
            ),
            (b"", None),
            (b"panic: oops", None),
            (br#"{"cniVersion":"1.0.0","ips":[]}"#, None),
        ];
        for (stdout, want) in cases {
            assert_eq!(
                parse_error(stdout),
                want,
                "{}",
                String::from_utf8_lossy(stdout)
            );
        }
        assert_eq!(describe_code(7), "invalid network config");
        assert_eq!(describe_code(123), "plugin-specific error");
    }
}
