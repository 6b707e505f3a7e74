//! Taints and tolerations, reduced to what matching needs.
//!
//! Nodes repel pods with taints; a pod gets past a taint only with a matching
//! toleration. The rules follow Kubernetes' `ToleratesTaint`: an empty
//! toleration effect matches every effect, an empty key (with `Exists`)
//! matches every key, `Equal` (the default operator) compares values, and an
//! unknown operator tolerates nothing.

use k8s_openapi::api::core::v1 as core;

/// The taint that `spec.unschedulable: true` stands for: a pod tolerating it
/// may land on a cordoned node (as DaemonSet pods do).
pub const UNSCHEDULABLE_TAINT_KEY: &str = "node.kubernetes.io/unschedulable";
/// The taint the node lifecycle controller puts on nodes that are not Ready.
/// Skiff's Ready filter lets pods tolerating it through, like Kubernetes'
/// taint-based handling of node conditions.
pub const NOT_READY_TAINT_KEY: &str = "node.kubernetes.io/not-ready";

/// Taint effect that keeps new pods off a node.
pub const NO_SCHEDULE: &str = "NoSchedule";
/// Taint effect that scoring avoids but filtering ignores.
pub const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";
/// Taint effect that also evicts running pods; for scheduling it acts like NoSchedule.
pub const NO_EXECUTE: &str = "NoExecute";

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value; empty when unset.
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute` (other strings are kept
    /// and simply never match a filter or score).
    pub effect: String,
}

impl Taint {
    /// Copies a Kubernetes taint.
    pub fn from_api(t: &core::Taint) -> Self {
        Taint {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
            effect: t.effect.clone(),
        }
    }

    /// Whether the filter must honour it (NoSchedule or NoExecute).
    pub fn blocks_scheduling(&self) -> bool {
        self.effect == NO_SCHEDULE || self.effect == NO_EXECUTE
    }
}

/// How a toleration compares the taint value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    Exists,
    Unknown,
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    key: String,
    op: Op,
    value: String,
    /// Empty matches every effect.
    effect: String,
}

impl Toleration {
    /// Copies a Kubernetes toleration.
    pub fn from_api(t: &core::Toleration) -> Self {
        Toleration {
            key: t.key.clone().unwrap_or_default(),
            op: match t.operator.as_deref() {
                None | Some("") | Some("Equal") => Op::Equal,
                Some("Exists") => Op::Exists,
                Some(_) => Op::Unknown,
            },
            value: t.value.clone().unwrap_or_default(),
            effect: t.effect.clone().unwrap_or_default(),
        }
    }

    /// Whether this toleration's effect is empty or `effect`.
    pub fn covers_effect(&self, effect: &str) -> bool {
        self.effect.is_empty() || self.effect == effect
    }

    /// Whether this toleration lets a pod past `taint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        self.tolerates_parts(&taint.key, &taint.value, &taint.effect)
    }

    fn tolerates_parts(&self, key: &str, value: &str, effect: &str) -> bool {
        if !self.covers_effect(effect) || (!self.key.is_empty() && self.key != key) {
            return false;
        }
        match self.op {
            Op::Equal => self.value == value,
            Op::Exists => true,
            Op::Unknown => false,
        }
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

/// Whether `tolerations` tolerate a value-less `key:NoSchedule` taint (the
/// implicit taints of cordoned and not-ready nodes).
pub fn tolerates_no_schedule_key(tolerations: &[Toleration], key: &str) -> bool {
    tolerations
        .iter()
        .any(|t| t.tolerates_parts(key, "", NO_SCHEDULE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: &str, op: Option<&str>, value: &str, effect: &str) -> Toleration {
        Toleration::from_api(&core::Toleration {
            key: Some(key.into()),
            operator: op.map(Into::into),
            value: Some(value.into()),
            effect: Some(effect.into()),
            ..Default::default()
        })
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
        }
    }

    #[test]
    fn equal_compares_key_value_effect() {
        let t = taint("dedicated", "gpu", NO_SCHEDULE);
        assert!(tol("dedicated", None, "gpu", NO_SCHEDULE).tolerates(&t));
        assert!(tol("dedicated", Some("Equal"), "gpu", "").tolerates(&t));
        assert!(!tol("dedicated", None, "cpu", NO_SCHEDULE).tolerates(&t));
        assert!(!tol("dedicated", None, "gpu", NO_EXECUTE).tolerates(&t));
        assert!(!tol("other", None, "gpu", NO_SCHEDULE).tolerates(&t));
    }

    #[test]
    fn exists_and_wildcards() {
        let t = taint("dedicated", "gpu", NO_EXECUTE);
        assert!(tol("dedicated", Some("Exists"), "", "").tolerates(&t));
        assert!(
            tol("", Some("Exists"), "", "").tolerates(&t),
            "empty key + Exists tolerates all"
        );
        assert!(
            !tol("dedicated", Some("Gt"), "", "").tolerates(&t),
            "unknown operator"
        );
        assert!(tolerates_no_schedule_key(
            &[tol(
                UNSCHEDULABLE_TAINT_KEY,
                Some("Exists"),
                "",
                NO_SCHEDULE
            )],
            UNSCHEDULABLE_TAINT_KEY
        ));
        assert!(!tolerates_no_schedule_key(&[], UNSCHEDULABLE_TAINT_KEY));
    }
}
