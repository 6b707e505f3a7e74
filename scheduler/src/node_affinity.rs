//! Node selectors and node affinity terms, compiled once per pod.
//!
//! `nodeSelector` is an AND of exact label matches; required node affinity is
//! an OR of terms, each an AND of label expressions (`In`, `NotIn`, `Exists`,
//! `DoesNotExist`, `Gt`, `Lt`) and field expressions (only `metadata.name`).
//! As in Kubernetes, a term with no expressions matches no node, and a
//! malformed term (unknown operator, wrong value count, non-integer `Gt`
//! value, another field than `metadata.name`) matches no node instead of
//! failing the whole pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;

#[derive(Debug, Clone, PartialEq, Eq)]
enum NodeOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: NodeOp,
    values: Vec<String>,
}

impl Requirement {
    fn compile(r: &core::NodeSelectorRequirement) -> Option<Self> {
        let values = r.values.clone().unwrap_or_default();
        let one_int = || match values.as_slice() {
            [v] => v.parse::<i64>().ok(),
            _ => None,
        };
        let op = match r.operator.as_str() {
            "In" if !values.is_empty() => NodeOp::In,
            "NotIn" if !values.is_empty() => NodeOp::NotIn,
            "Exists" if values.is_empty() => NodeOp::Exists,
            "DoesNotExist" if values.is_empty() => NodeOp::DoesNotExist,
            "Gt" => NodeOp::Gt(one_int()?),
            "Lt" => NodeOp::Lt(one_int()?),
            _ => return None,
        };
        Some(Requirement {
            key: r.key.clone(),
            op,
            values,
        })
    }

    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (NodeOp::In, Some(v)) => self.values.iter().any(|x| x == v),
            (NodeOp::In, None) => false,
            (NodeOp::NotIn, Some(v)) => !self.values.iter().any(|x| x == v),
            (NodeOp::NotIn, None) => true,
            (NodeOp::Exists, v) => v.is_some(),
            (NodeOp::DoesNotExist, v) => v.is_none(),
            (NodeOp::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x > *n),
            (NodeOp::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x < *n),
            (NodeOp::Gt(_) | NodeOp::Lt(_), None) => false,
        }
    }
}

/// One compiled node selector term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    labels: Vec<Requirement>,
    /// `metadata.name` requirements.
    names: Vec<Requirement>,
    /// False for an empty or malformed term: it matches nothing.
    valid: bool,
}

impl NodeSelectorTerm {
    /// Compiles a term; malformed parts make it match nothing.
    pub fn compile(t: &core::NodeSelectorTerm) -> Self {
        let labels: Option<Vec<_>> = t
            .match_expressions
            .iter()
            .flatten()
            .map(Requirement::compile)
            .collect();
        let names: Option<Vec<_>> = t
            .match_fields
            .iter()
            .flatten()
            .map(|r| {
                if r.key != "metadata.name" || !matches!(r.operator.as_str(), "In" | "NotIn") {
                    return None;
                }
                Requirement::compile(r)
            })
            .collect();
        match (labels, names) {
            (Some(labels), Some(names)) => {
                let valid = !(labels.is_empty() && names.is_empty());
                NodeSelectorTerm {
                    labels,
                    names,
                    valid,
                }
            }
            _ => NodeSelectorTerm {
                labels: Vec::new(),
                names: Vec::new(),
                valid: false,
            },
        }
    }

    /// Whether a node with this name and these labels satisfies the term.
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.valid
            && self
                .labels
                .iter()
                .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
            && self.names.iter().all(|r| r.matches(Some(node_name)))
    }
}

/// The hard node constraints of a pod: `nodeSelector` and
/// `requiredDuringSchedulingIgnoredDuringExecution`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequiredNodeAffinity {
    node_selector: Vec<(String, String)>,
    /// `None` when the pod has no required node affinity at all.
    terms: Option<Vec<NodeSelectorTerm>>,
}

impl RequiredNodeAffinity {
    /// Compiles the pod's hard node constraints.
    pub fn compile(spec: Option<&core::PodSpec>) -> Self {
        let Some(spec) = spec else {
            return Self::default();
        };
        let node_selector = spec
            .node_selector
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let terms = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|s| {
                s.node_selector_terms
                    .iter()
                    .map(NodeSelectorTerm::compile)
                    .collect()
            });
        RequiredNodeAffinity {
            node_selector,
            terms,
        }
    }

    /// True when the pod constrains nodes at all (a fast path for the filter).
    pub fn is_empty(&self) -> bool {
        self.node_selector.is_empty() && self.terms.is_none()
    }

    /// Whether a node satisfies the selector and at least one term.
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self
                .terms
                .as_ref()
                .is_none_or(|terms| terms.iter().any(|t| t.matches(node_name, labels)))
    }
}

/// A `preferredDuringSchedulingIgnoredDuringExecution` node affinity term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferredNodeTerm {
    /// 1–100; what a matching node earns before normalisation.
    pub weight: i64,
    /// The term.
    pub term: NodeSelectorTerm,
}

/// Compiles the pod's preferred node affinity terms (zero weights dropped).
pub fn compile_preferred(spec: Option<&core::PodSpec>) -> Vec<PreferredNodeTerm> {
    spec.and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|p| p.weight != 0)
        .map(|p| PreferredNodeTerm {
            weight: i64::from(p.weight),
            term: NodeSelectorTerm::compile(&p.preference),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, op: &str, values: &[&str]) -> core::NodeSelectorRequirement {
        core::NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn term(exprs: Vec<core::NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm::compile(&core::NodeSelectorTerm {
            match_expressions: Some(exprs),
            match_fields: None,
        })
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn operators() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        assert!(term(vec![req("zone", "In", &["a", "b"])]).matches("n", &l));
        assert!(!term(vec![req("zone", "In", &["b"])]).matches("n", &l));
        assert!(term(vec![req("zone", "NotIn", &["b"])]).matches("n", &l));
        assert!(term(vec![req("missing", "NotIn", &["b"])]).matches("n", &l));
        assert!(!term(vec![req("zone", "NotIn", &["a"])]).matches("n", &l));
        assert!(term(vec![req("zone", "Exists", &[])]).matches("n", &l));
        assert!(!term(vec![req("zone", "DoesNotExist", &[])]).matches("n", &l));
        assert!(term(vec![req("gpu", "DoesNotExist", &[])]).matches("n", &l));
        assert!(term(vec![req("cores", "Gt", &["4"])]).matches("n", &l));
        assert!(!term(vec![req("cores", "Gt", &["8"])]).matches("n", &l));
        assert!(term(vec![req("cores", "Lt", &["9"])]).matches("n", &l));
        assert!(
            !term(vec![req("zone", "Lt", &["9"])]).matches("n", &l),
            "non-integer label"
        );
        assert!(
            !term(vec![req("gpu", "Gt", &["1"])]).matches("n", &l),
            "missing label"
        );
    }

    #[test]
    fn malformed_and_empty_terms_match_nothing() {
        let l = labels(&[("zone", "a")]);
        assert!(!term(vec![]).matches("n", &l));
        assert!(!term(vec![req("zone", "Like", &["a"])]).matches("n", &l));
        assert!(!term(vec![req("zone", "In", &[])]).matches("n", &l));
        assert!(!term(vec![req("cores", "Gt", &["x"])]).matches("n", &l));
        assert!(!term(vec![req("zone", "Exists", &["a"])]).matches("n", &l));
    }

    #[test]
    fn match_fields_on_node_name() {
        let t = NodeSelectorTerm::compile(&core::NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.name", "In", &["n1"])]),
        });
        assert!(t.matches("n1", &BTreeMap::new()));
        assert!(!t.matches("n2", &BTreeMap::new()));
        let bad = NodeSelectorTerm::compile(&core::NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.uid", "In", &["n1"])]),
        });
        assert!(!bad.matches("n1", &BTreeMap::new()));
    }
}
