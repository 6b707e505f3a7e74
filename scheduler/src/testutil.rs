//! Small builders for test pods and nodes.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

pub struct PodB(core::Pod);

pub fn pod(name: &str) -> PodB {
    let mut p = core::Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.namespace = Some("default".into());
    p.spec = Some(core::PodSpec::default());
    PodB(p)
}

pub fn container(requests: &[(&str, &str)]) -> core::Container {
    core::Container {
        name: "c".into(),
        resources: Some(core::ResourceRequirements {
            requests: Some(
                requests
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn term(key: &str, value: &str, topology_key: &str) -> core::PodAffinityTerm {
    core::PodAffinityTerm {
        label_selector: Some(selector(key, value)),
        topology_key: topology_key.into(),
        ..Default::default()
    }
}

pub fn selector(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some([(key.to_owned(), value.to_owned())].into()),
        ..Default::default()
    }
}

impl PodB {
    fn spec(&mut self) -> &mut core::PodSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }
    fn affinity(&mut self) -> &mut core::Affinity {
        self.spec().affinity.get_or_insert_with(Default::default)
    }
    pub fn ns(mut self, ns: &str) -> Self {
        self.0.metadata.namespace = Some(ns.into());
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }
    pub fn containers(mut self, cs: Vec<core::Container>) -> Self {
        self.spec().containers = cs;
        self
    }
    pub fn requests(self, r: &[(&str, &str)]) -> Self {
        self.containers(vec![container(r)])
    }
    pub fn node_name(mut self, n: &str) -> Self {
        self.spec().node_name = Some(n.into());
        self
    }
    pub fn terminating(mut self) -> Self {
        self.0.metadata.deletion_timestamp = Some(Time(Default::default()));
        self
    }
    pub fn host_port(mut self, port: i32) -> Self {
        let spec = self.spec();
        if spec.containers.is_empty() {
            spec.containers.push(container(&[]));
        }
        spec.containers[0]
            .ports
            .get_or_insert_with(Default::default)
            .push(core::ContainerPort {
                container_port: port,
                host_port: Some(port),
                ..Default::default()
            });
        self
    }
    pub fn node_selector(mut self, k: &str, v: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }
    pub fn toleration(mut self, key: &str, op: &str, value: &str, effect: &str) -> Self {
        self.spec()
            .tolerations
            .get_or_insert_with(Default::default)
            .push(core::Toleration {
                key: Some(key.into()),
                operator: Some(op.into()),
                value: Some(value.into()),
                effect: Some(effect.into()),
                ..Default::default()
            });
        self
    }
    pub fn required_node_term(mut self, exprs: &[(&str, &str, &[&str])]) -> Self {
        let term = node_term(exprs);
        let na = self
            .affinity()
            .node_affinity
            .get_or_insert_with(Default::default);
        na.required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .node_selector_terms
            .push(term);
        self
    }
    pub fn preferred_node_term(mut self, weight: i32, exprs: &[(&str, &str, &[&str])]) -> Self {
        let preference = node_term(exprs);
        let na = self
            .affinity()
            .node_affinity
            .get_or_insert_with(Default::default);
        na.preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(core::PreferredSchedulingTerm { weight, preference });
        self
    }
    pub fn pod_affinity(mut self, t: core::PodAffinityTerm) -> Self {
        let pa = self
            .affinity()
            .pod_affinity
            .get_or_insert_with(Default::default);
        pa.required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(t);
        self
    }
    pub fn pod_anti_affinity(mut self, t: core::PodAffinityTerm) -> Self {
        let pa = self
            .affinity()
            .pod_anti_affinity
            .get_or_insert_with(Default::default);
        pa.required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(t);
        self
    }
    pub fn preferred_pod_affinity(mut self, weight: i32, t: core::PodAffinityTerm) -> Self {
        let pa = self
            .affinity()
            .pod_affinity
            .get_or_insert_with(Default::default);
        pa.preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(core::WeightedPodAffinityTerm {
                weight,
                pod_affinity_term: t,
            });
        self
    }
    pub fn preferred_pod_anti_affinity(mut self, weight: i32, t: core::PodAffinityTerm) -> Self {
        let pa = self
            .affinity()
            .pod_anti_affinity
            .get_or_insert_with(Default::default);
        pa.preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(core::WeightedPodAffinityTerm {
                weight,
                pod_affinity_term: t,
            });
        self
    }
    pub fn spread(mut self, max_skew: i32, key: &str, when: &str, sel: (&str, &str)) -> Self {
        self.spec()
            .topology_spread_constraints
            .get_or_insert_with(Default::default)
            .push(core::TopologySpreadConstraint {
                max_skew,
                topology_key: key.into(),
                when_unsatisfiable: when.into(),
                label_selector: Some(selector(sel.0, sel.1)),
                ..Default::default()
            });
        self
    }
    pub fn build(self) -> core::Pod {
        self.0
    }
}

fn node_term(exprs: &[(&str, &str, &[&str])]) -> core::NodeSelectorTerm {
    core::NodeSelectorTerm {
        match_expressions: Some(
            exprs
                .iter()
                .map(|(k, op, vs)| core::NodeSelectorRequirement {
                    key: k.to_string(),
                    operator: op.to_string(),
                    values: Some(vs.iter().map(|s| s.to_string()).collect()),
                })
                .collect(),
        ),
        match_fields: None,
    }
}

pub struct NodeB(core::Node);

pub fn node(name: &str) -> NodeB {
    let mut n = core::Node::default();
    n.metadata.name = Some(name.into());
    n.metadata.labels = Some([("kubernetes.io/hostname".to_owned(), name.to_owned())].into());
    n.spec = Some(core::NodeSpec::default());
    n.status = Some(core::NodeStatus {
        conditions: Some(vec![core::NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    NodeB(n).capacity("4", "8Gi", 110)
}

impl NodeB {
    pub fn capacity(mut self, cpu: &str, memory: &str, pods: i64) -> Self {
        let status = self.0.status.get_or_insert_with(Default::default);
        status.allocatable = Some(
            [
                ("cpu".to_owned(), Quantity(cpu.into())),
                ("memory".to_owned(), Quantity(memory.into())),
                ("ephemeral-storage".to_owned(), Quantity("100Gi".into())),
                ("pods".to_owned(), Quantity(pods.to_string())),
            ]
            .into(),
        );
        self
    }
    pub fn allocatable(mut self, name: &str, q: &str) -> Self {
        let status = self.0.status.get_or_insert_with(Default::default);
        status
            .allocatable
            .get_or_insert_with(Default::default)
            .insert(name.into(), Quantity(q.into()));
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }
    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        let spec = self.0.spec.get_or_insert_with(Default::default);
        spec.taints
            .get_or_insert_with(Default::default)
            .push(core::Taint {
                key: key.into(),
                value: if value.is_empty() {
                    None
                } else {
                    Some(value.into())
                },
                effect: effect.into(),
                time_added: None,
            });
        self
    }
    pub fn unschedulable(mut self) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = Some(true);
        self
    }
    pub fn not_ready(mut self) -> Self {
        if let Some(cs) = self.0.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            cs[0].status = "False".into();
        }
        self
    }
    pub fn build(self) -> core::Node {
        self.0
    }
}
