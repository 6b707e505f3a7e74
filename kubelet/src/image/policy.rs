//! `imagePullPolicy`: whether to contact the registry before starting a container.
//!
//! The API server already defaults an empty policy (`Always` for `:latest` or untagged images,
//! `IfNotPresent` otherwise), so the agent only ever sees one of the three values.

use std::str::FromStr;

/// A container's `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Resolve the reference at the registry every time (layers already present are reused).
    Always,
    /// Pull only when the image is not in the store.
    IfNotPresent,
    /// Never contact a registry; the image must have been pulled or loaded before.
    Never,
}

impl FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "Always" => Ok(PullPolicy::Always),
            "IfNotPresent" => Ok(PullPolicy::IfNotPresent),
            "Never" => Ok(PullPolicy::Never),
            other => Err(format!(
                "unsupported imagePullPolicy {other:?} (want Always, IfNotPresent or Never)"
            )),
        }
    }
}

/// What to do for one container image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullDecision {
    /// Contact the registry.
    Pull,
    /// Use the image already in the store.
    UsePresent,
    /// Fail with `ErrImageNeverPull`.
    NeverPullAbsent,
}

/// The policy decision, kept pure so every combination is table-tested.
pub fn should_pull(policy: PullPolicy, present: bool) -> PullDecision {
    match (policy, present) {
        (PullPolicy::Always, _) => PullDecision::Pull,
        (PullPolicy::IfNotPresent, true) | (PullPolicy::Never, true) => PullDecision::UsePresent,
        (PullPolicy::IfNotPresent, false) => PullDecision::Pull,
        (PullPolicy::Never, false) => PullDecision::NeverPullAbsent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decides_per_policy_and_presence() {
        use PullDecision::*;
        use PullPolicy::*;
        let cases = [
            (Always, false, Pull),
            (Always, true, Pull),
            (IfNotPresent, false, Pull),
            (IfNotPresent, true, UsePresent),
            (Never, false, NeverPullAbsent),
            (Never, true, UsePresent),
        ];
        for (policy, present, want) in cases {
            assert_eq!(
                should_pull(policy, present),
                want,
                "{policy:?} present={present}"
            );
        }
    }

    #[test]
    fn parses_kubernetes_spelling() {
        assert_eq!("IfNotPresent".parse(), Ok(PullPolicy::IfNotPresent));
        assert_eq!("Always".parse(), Ok(PullPolicy::Always));
        assert_eq!("Never".parse(), Ok(PullPolicy::Never));
        assert!("always".parse::<PullPolicy>().is_err());
        assert!("".parse::<PullPolicy>().is_err());
    }
}
