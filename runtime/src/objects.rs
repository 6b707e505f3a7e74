//! Helpers about API objects that every controller needs: owner references (and an index
//! on them), pod activity, readiness and availability, and resource quantities.
//!
//! Quantity parsing duplicates a small part of `apiserver/src/strategy/quantity.rs` on
//! purpose: the runtime crate must not depend on the API server. Both follow apimachinery's
//! `resource.Quantity` grammar.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{self as metav1, ObjectMeta, OwnerReference};

use crate::error::{Error, Result};
use crate::selector::{LabelSelector, SelectorError};

/// The parsed form of a structured `metav1.LabelSelector` (a ReplicaSet's, Deployment's,
/// PodDisruptionBudget's `selector`), with Kubernetes' meaning: no requirement selects
/// everything; bad operators or label syntax are errors.
pub fn label_selector(selector: &metav1::LabelSelector) -> Result<LabelSelector, SelectorError> {
    let json =
        serde_json::to_value(selector).map_err(|e| SelectorError::Structured(e.to_string()))?;
    LabelSelector::from_label_selector_json(&json)
}

/// The owner reference marked `controller: true`, if any: the object that manages this one.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta` is controlled by the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// The owner reference a controller puts on what it creates: `controller` and
/// `blockOwnerDeletion` set, so the garbage collector and foreground deletion see it.
/// `None` when the owner has no name or uid yet (not stored).
pub fn controller_ref<K>(owner: &K) -> Option<OwnerReference>
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    let meta = owner.metadata();
    Some(OwnerReference {
        api_version: K::API_VERSION.to_string(),
        kind: K::KIND.to_string(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Name of the informer index on the uid of an object's controller (its `controller: true`
/// owner reference), so a controller finds what it owns without scanning a namespace.
pub const CONTROLLER_UID_INDEX: &str = "metadata.ownerReferences.controller.uid";

/// The index values of [`CONTROLLER_UID_INDEX`]: the controller's uid, if any.
pub fn controller_uid_index(meta: &ObjectMeta) -> Vec<String> {
    controller_of(meta)
        .map(|r| r.uid.clone())
        .into_iter()
        .collect()
}

/// Name of the informer index of objects without a controller, by namespace: the orphans a
/// controller may adopt, found without scanning everything a namespace holds.
pub const ORPHAN_INDEX: &str = "orphans.metadata.namespace";

/// The index values of [`ORPHAN_INDEX`]: the namespace of an object without a controller.
pub fn orphan_index(meta: &ObjectMeta) -> Vec<String> {
    if controller_of(meta).is_some() {
        return Vec::new();
    }
    vec![meta.namespace.clone().unwrap_or_default()]
}

/// Whether the pod still counts toward its controller's replicas: not finished (`Succeeded`
/// or `Failed`) and not being deleted (Kubernetes' `IsPodActive`).
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// When a ready pod last became ready (its `Ready` condition's `lastTransitionTime`); `None`
/// when it is not ready or the time is unknown.
pub fn pod_ready_time(pod: &Pod) -> Option<jiff::Timestamp> {
    ready_since(pod).flatten()
}

/// When the pod last became ready, if it is ready now.
fn ready_since(pod: &Pod) -> Option<Option<jiff::Timestamp>> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then(|| cond.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod counts as available for a Deployment or ReplicaSet: ready, and ready for
/// at least `min_ready_seconds` at `now` (a ready pod without a transition time counts as
/// available only when `min_ready_seconds` is 0).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => {
            let ready_for = now.duration_since(since);
            ready_for >= jiff::SignedDuration::from_secs(i64::from(min_ready_seconds))
        }
    }
}

/// A resource quantity (`100m`, `1.5Gi`, `2e3`) in exact nano-units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    /// Parses the Kubernetes quantity grammar: an optionally signed decimal number, then a
    /// binary suffix (`Ki`…`Ei`), a decimal suffix (`n u m k M G T P E`) or an exponent
    /// (`e3`, `E-2`). Precision below a nano-unit is rounded up, as Kubernetes does.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::Request(format!(
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {s:?}"
            ))
        };
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(num_len);
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(bad());
        }
        let (mut dec_exp, bin_exp): (i32, u32) = match suffix {
            "" => (0, 0),
            "Ki" => (0, 1),
            "Mi" => (0, 2),
            "Gi" => (0, 3),
            "Ti" => (0, 4),
            "Pi" => (0, 5),
            "Ei" => (0, 6),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            e if e.starts_with(['e', 'E']) => {
                let n: i32 = e[1..].parse().map_err(|_| bad())?;
                (n, 0)
            }
            _ => return Err(bad()),
        };
        let digits = format!("{int}{frac}");
        let digits = digits.trim_start_matches('0');
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| bad())?
        };
        dec_exp += 9 - i32::try_from(frac.len()).map_err(|_| bad())?;
        let overflow = || Error::Request(format!("quantity {s:?} is too large"));
        let mut nanos = mantissa;
        for _ in 0..bin_exp {
            nanos = nanos.checked_mul(1024).ok_or_else(overflow)?;
        }
        if dec_exp >= 0 {
            let p = 10i128.checked_pow(dec_exp as u32).ok_or_else(overflow)?;
            nanos = nanos.checked_mul(p).ok_or_else(overflow)?;
        } else {
            let p = 10i128
                .checked_pow(dec_exp.unsigned_abs())
                .unwrap_or(i128::MAX);
            nanos = nanos / p + i128::from(nanos % p != 0);
        }
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
        })
    }

    /// The value in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in milli-units, rounded up (CPU in millicores).
    pub fn millis_ceil(&self) -> i128 {
        ceil_div(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded up (memory in bytes).
    pub fn value_ceil(&self) -> i128 {
        ceil_div(self.nanos, 1_000_000_000)
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && a > 0 { q + 1 } else { q }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn controller_refs() {
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                uid: Some("u1".into()),
                ..ObjectMeta::default()
            },
            ..ReplicaSet::default()
        };
        let r = controller_ref(&rs).unwrap();
        assert_eq!(
            (r.api_version.as_str(), r.kind.as_str()),
            ("apps/v1", "ReplicaSet")
        );
        assert_eq!(
            (r.controller, r.block_owner_deletion),
            (Some(true), Some(true))
        );
        let other = OwnerReference {
            name: "x".into(),
            uid: "u0".into(),
            ..r.clone()
        };
        let child = ObjectMeta {
            owner_references: Some(vec![
                OwnerReference {
                    controller: None,
                    ..other
                },
                r,
            ]),
            ..ObjectMeta::default()
        };
        assert_eq!(controller_of(&child).unwrap().uid, "u1");
        assert!(is_controlled_by(&child, "u1"));
        assert!(!is_controlled_by(&child, "u0"));
        assert!(controller_ref(&ReplicaSet::default()).is_none());
    }

    fn pod(ready: &str, since: Option<i64>) -> Pod {
        Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    last_transition_time: since
                        .map(|s| Time(jiff::Timestamp::from_second(s).unwrap())),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn readiness_and_availability() {
        let now = jiff::Timestamp::from_second(1000).unwrap();
        assert!(!is_pod_ready(&Pod::default()));
        assert!(!is_pod_ready(&pod("False", Some(900))));
        assert!(is_pod_ready(&pod("True", Some(900))));
        assert!(is_pod_available(&pod("True", Some(995)), 0, now));
        assert!(!is_pod_available(&pod("True", Some(995)), 10, now));
        assert!(is_pod_available(&pod("True", Some(990)), 10, now));
        assert!(!is_pod_available(&pod("True", None), 10, now));
        assert!(!is_pod_available(&pod("False", Some(0)), 0, now));
    }

    #[test]
    fn structured_selectors() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let sel = label_selector(&metav1::LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["front".into()]),
            }]),
        })
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "front")])));
        assert!(!sel.matches(&labels(&[("app", "web")])));
        assert!(
            label_selector(&metav1::LabelSelector::default())
                .unwrap()
                .is_empty()
        );
        let bad = metav1::LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert!(label_selector(&bad).is_err());
    }

    #[test]
    fn activity_ready_time_and_controller_index() {
        let mut p = pod("True", Some(900));
        assert_eq!(
            pod_ready_time(&p),
            Some(jiff::Timestamp::from_second(900).unwrap())
        );
        assert_eq!(pod_ready_time(&pod("True", None)), None);
        assert_eq!(pod_ready_time(&pod("False", Some(900))), None);
        assert!(is_pod_active(&p));
        for (phase, active) in [
            ("Pending", true),
            ("Running", true),
            ("Unknown", true),
            ("Succeeded", false),
            ("Failed", false),
        ] {
            p.status.as_mut().unwrap().phase = Some(phase.into());
            assert_eq!(is_pod_active(&p), active, "{phase}");
        }
        p.status.as_mut().unwrap().phase = Some("Running".into());
        p.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::from_second(1).unwrap()));
        assert!(!is_pod_active(&p), "terminating");

        let owner = |controller| OwnerReference {
            uid: "u1".into(),
            controller,
            ..OwnerReference::default()
        };
        let meta = |refs| ObjectMeta {
            owner_references: Some(refs),
            ..ObjectMeta::default()
        };
        assert_eq!(controller_uid_index(&meta(vec![owner(Some(true))])), ["u1"]);
        assert!(controller_uid_index(&meta(vec![owner(None)])).is_empty());
        assert!(controller_uid_index(&ObjectMeta::default()).is_empty());
        let mut orphan = meta(vec![owner(None)]);
        orphan.namespace = Some("ns".into());
        assert_eq!(orphan_index(&orphan), ["ns"]);
        assert!(orphan_index(&meta(vec![owner(Some(true))])).is_empty());
    }

    #[test]
    fn quantities() {
        let q = |s| Quantity::parse(s).unwrap();
        assert_eq!(q("100m").millis_ceil(), 100);
        assert_eq!(q("1.5").millis_ceil(), 1500);
        assert_eq!(q("2").millis_ceil(), 2000);
        assert_eq!(q("1Ki").value_ceil(), 1024);
        assert_eq!(q("1.5Gi").value_ceil(), 1_610_612_736);
        assert_eq!(q("128974848").value_ceil(), 128_974_848);
        assert_eq!(q("129e6").value_ceil(), 129_000_000);
        assert_eq!(q("123Mi").value_ceil(), 128_974_848);
        assert_eq!(q("1E").value_ceil(), 1_000_000_000_000_000_000);
        assert_eq!(q("1Ei").value_ceil(), 1 << 60);
        assert_eq!(q("0.1n").nanos(), 1, "rounds up below a nano");
        assert_eq!(q("-250m").millis_ceil(), -250);
        assert_eq!(q(".5").millis_ceil(), 500);
        assert_eq!(q("1e-3").millis_ceil(), 1);
        assert!(q("1Gi") > q("1G"));
        for bad in ["", "Gi", "1.2.3", "1 Gi", "1X", "abc", "1e", "--1"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?}");
        }
    }
}
