//! Resource amounts and how a pod's requests add up.
//!
//! A pod's effective request is not simply the sum of its containers: init
//! containers run one at a time before the app containers, so only the
//! largest of them counts, while sidecars (init containers with
//! `restartPolicy: Always`) keep running and add to everything after them.
//! Pod overhead (RuntimeClass) comes on top. This module computes exactly
//! that, the way Kubernetes' resource helper does, once per pod, so the hot
//! path only adds and compares integers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity;

/// cpu request assumed for a container that names none, when *scoring*
/// (kube-scheduler's `DefaultMilliCPURequest`): keeps request-less pods from
/// all piling onto one node. Filtering still uses the real (zero) request.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory request assumed for a container that names none, when scoring
/// (kube-scheduler's `DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of the resources the scheduler tracks. cpu is in milli-cpu,
/// memory and ephemeral-storage in bytes, extended resources (`nvidia.com/gpu`,
/// `hugepages-2Mi`, ...) in whole units, kept in a short sorted list because
/// few pods or nodes have any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// milli-cpu
    pub milli_cpu: i64,
    /// bytes
    pub memory: i64,
    /// bytes
    pub ephemeral_storage: i64,
    /// Extended/scalar resources by name, sorted by name; zero entries omitted.
    pub scalars: Vec<(String, i64)>,
}

impl Resources {
    /// Reads a `requests`/`allocatable`/`overhead` map. Unparsable quantities
    /// count as zero; `pods` and unknown `kubernetes.io/` names are ignored
    /// here (pod count is tracked separately).
    pub fn from_map(map: Option<&BTreeMap<String, Quantity>>) -> Self {
        let mut r = Resources::default();
        for (name, q) in map.into_iter().flatten() {
            match name.as_str() {
                "cpu" => r.milli_cpu = quantity::milli(q),
                "memory" => r.memory = quantity::value(q),
                "ephemeral-storage" => r.ephemeral_storage = quantity::value(q),
                other if is_scalar_resource(other) => {
                    let v = quantity::value(q);
                    if v > 0 {
                        r.scalars.push((other.to_owned(), v));
                    }
                }
                _ => {}
            }
        }
        // BTreeMap iteration is already sorted, so `scalars` is too.
        r
    }

    /// The amount of one extended resource (zero when absent).
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalars
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map(|i| self.scalars[i].1)
            .unwrap_or(0)
    }

    /// `self += other` (saturating).
    pub fn add(&mut self, other: &Resources) {
        self.combine(other, i64::saturating_add);
    }

    /// `self -= other` (saturating).
    pub fn sub(&mut self, other: &Resources) {
        self.combine(other, i64::saturating_sub);
    }

    /// `self = max(self, other)` per resource.
    pub fn max_with(&mut self, other: &Resources) {
        self.combine(other, i64::max);
    }

    fn combine(&mut self, other: &Resources, f: fn(i64, i64) -> i64) {
        self.milli_cpu = f(self.milli_cpu, other.milli_cpu);
        self.memory = f(self.memory, other.memory);
        self.ephemeral_storage = f(self.ephemeral_storage, other.ephemeral_storage);
        for (name, v) in &other.scalars {
            match self.scalars.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
                Ok(i) => self.scalars[i].1 = f(self.scalars[i].1, *v),
                Err(i) => self.scalars.insert(i, (name.clone(), f(0, *v))),
            }
        }
        self.scalars.retain(|(_, v)| *v != 0);
    }
}

/// Whether a resource name is an extended ("scalar") resource the fit check
/// counts: hugepages, attachable volumes, or a domain-prefixed name outside
/// `kubernetes.io/` (`nvidia.com/gpu`), as Kubernetes classifies them.
pub fn is_scalar_resource(name: &str) -> bool {
    if name.starts_with("hugepages-") || name.starts_with("attachable-volumes-") {
        return true;
    }
    match name.split_once('/') {
        Some((domain, _)) => {
            !(domain == "kubernetes.io"
                || domain.ends_with(".kubernetes.io")
                || name.starts_with("requests."))
        }
        None => false,
    }
}

/// A pod's requests in the two forms the scheduler uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// What the pod really asks for: the fit filter compares this with
    /// allocatable minus what is already requested.
    pub requested: Resources,
    /// cpu and memory with kube-scheduler's defaults for containers that name
    /// none; used only by the LeastAllocated score.
    pub non_zero_milli_cpu: i64,
    /// See `non_zero_milli_cpu`.
    pub non_zero_memory: i64,
}

impl PodRequests {
    /// Computes a pod's requests: app containers and sidecars summed, the
    /// largest init-container step (plus the sidecars started before it)
    /// taken if larger, then overhead added.
    pub fn of(spec: Option<&PodSpec>) -> Self {
        let Some(spec) = spec else {
            return PodRequests::default();
        };
        let requested = effective(spec, |c| Resources::from_map(requests_of(c)));
        let non_zero = effective(spec, |c| {
            let map = requests_of(c);
            let mut r = Resources::from_map(map);
            let has = |k: &str| map.is_some_and(|m| m.contains_key(k));
            if !has("cpu") {
                r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
            }
            if !has("memory") {
                r.memory = DEFAULT_MEMORY_REQUEST;
            }
            r
        });
        PodRequests {
            requested,
            non_zero_milli_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
        }
    }
}

fn requests_of(c: &Container) -> Option<&BTreeMap<String, Quantity>> {
    c.resources.as_ref().and_then(|r| r.requests.as_ref())
}

/// Whether an init container is a sidecar (keeps running beside the app).
pub(crate) fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn effective(spec: &PodSpec, per_container: impl Fn(&Container) -> Resources) -> Resources {
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&per_container(c));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let mut step = per_container(c);
        if is_sidecar(c) {
            total.add(&step);
            sidecars.add(&step);
            step = sidecars.clone();
        } else {
            step.add(&sidecars);
        }
        init_peak.max_with(&step);
    }
    total.max_with(&init_peak);
    total.add(&Resources::from_map(spec.overhead.as_ref()));
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{container, pod};

    #[test]
    fn sums_containers_and_adds_overhead() {
        let mut p = pod("a")
            .containers(vec![
                container(&[("cpu", "100m"), ("memory", "1Gi")]),
                container(&[("cpu", "250m"), ("nvidia.com/gpu", "1")]),
            ])
            .build();
        p.spec.as_mut().unwrap().overhead =
            Some([("cpu".to_owned(), Quantity("10m".into()))].into());
        let r = PodRequests::of(p.spec.as_ref());
        assert_eq!(r.requested.milli_cpu, 360);
        assert_eq!(r.requested.memory, 1 << 30);
        assert_eq!(r.requested.scalar("nvidia.com/gpu"), 1);
        assert_eq!(r.non_zero_milli_cpu, 360);
        // second container names no memory: scoring assumes the default
        assert_eq!(r.non_zero_memory, (1 << 30) + DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn init_containers_take_the_max_and_sidecars_add() {
        let mut init_big = container(&[("cpu", "2")]);
        init_big.name = "init".into();
        let mut sidecar = container(&[("cpu", "500m")]);
        sidecar.restart_policy = Some("Always".into());
        let mut late_init = container(&[("cpu", "1800m")]);
        late_init.name = "late".into();
        let mut p = pod("a")
            .containers(vec![container(&[("cpu", "1")])])
            .build();
        p.spec.as_mut().unwrap().init_containers = Some(vec![init_big, sidecar, late_init]);
        let r = PodRequests::of(p.spec.as_ref());
        // steady state 1 + 0.5 sidecar = 1.5; init peaks: 2, 0.5, 1.8+0.5 = 2.3
        assert_eq!(r.requested.milli_cpu, 2300);
    }

    #[test]
    fn missing_spec_and_garbage_count_as_zero() {
        assert_eq!(PodRequests::of(None), PodRequests::default());
        let p = pod("a")
            .containers(vec![container(&[("cpu", "lots")])])
            .build();
        let r = PodRequests::of(p.spec.as_ref());
        assert_eq!(r.requested.milli_cpu, 0);
        // an explicit (even unparsable) request is not replaced by the default
        assert_eq!(r.non_zero_milli_cpu, 0);
        assert_eq!(r.non_zero_memory, DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn scalar_classification() {
        assert!(is_scalar_resource("nvidia.com/gpu"));
        assert!(is_scalar_resource("hugepages-2Mi"));
        assert!(!is_scalar_resource("cpu"));
        assert!(!is_scalar_resource("kubernetes.io/something"));
        assert!(!is_scalar_resource("pods"));
    }

    #[test]
    fn arithmetic_keeps_scalars_sorted_and_drops_zeros() {
        let mut a = Resources {
            scalars: vec![("b/x".into(), 2)],
            ..Default::default()
        };
        let b = Resources {
            milli_cpu: 5,
            scalars: vec![("a/y".into(), 1), ("b/x".into(), 2)],
            ..Default::default()
        };
        a.add(&b);
        assert_eq!(a.scalars, vec![("a/y".into(), 1), ("b/x".into(), 4)]);
        a.sub(&b);
        assert_eq!(a.scalars, vec![("b/x".into(), 2)]);
        assert_eq!(a.milli_cpu, 0);
    }
}
