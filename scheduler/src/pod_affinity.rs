//! Pod (anti-)affinity terms, compiled once per pod.
//!
//! A term selects pods by labels within a set of namespaces; the topology key
//! says which nodes count as "together" (same value of that node label). The
//! scheduler evaluates terms against every existing pod, so the label
//! selector is parsed once here (through `runtime::selector`, the project's
//! one implementation of Kubernetes selector semantics) rather than on every
//! comparison.
//!
//! Semantics follow Kubernetes: a missing `labelSelector` selects no pod;
//! with neither `namespaces` nor `namespaceSelector` the term looks at the
//! owner pod's namespace; an empty `namespaceSelector` means all namespaces.
//! `matchLabelKeys` / `mismatchLabelKeys` add `key in (v)` / `key notin (v)`
//! for the owner pod's value `v` of each key (keys the pod lacks are
//! skipped). An invalid selector makes the term select nothing.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiSelector;
use runtime::selector::LabelSelector;
use serde_json::{Value, json};

use crate::pod_info::PodInfo;

/// Labels of namespaces, for terms with a `namespaceSelector`.
pub type NamespaceLabels = HashMap<String, BTreeMap<String, String>>;

/// Builds a selector from an API label selector plus extra
/// `(key, operator, value)` expressions (`matchLabelKeys` and friends).
/// `None` selects nothing; an invalid selector selects nothing.
pub(crate) fn compile_selector<'a>(
    selector: Option<&ApiSelector>,
    extra: impl Iterator<Item = (&'a str, &'static str, &'a str)>,
) -> LabelSelector {
    let Some(selector) = selector else {
        return LabelSelector::nothing();
    };
    let Ok(mut v) = serde_json::to_value(selector) else {
        return LabelSelector::nothing();
    };
    let extra: Vec<Value> = extra
        .map(|(k, op, val)| json!({"key": k, "operator": op, "values": [val]}))
        .collect();
    if let (false, Some(obj)) = (extra.is_empty(), v.as_object_mut()) {
        let exprs = obj
            .entry("matchExpressions")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !exprs.is_array() {
            *exprs = Value::Array(Vec::new());
        }
        if let Some(a) = exprs.as_array_mut() {
            a.extend(extra);
        }
    }
    LabelSelector::from_label_selector_json(&v).unwrap_or_else(|_| LabelSelector::nothing())
}

/// A compiled pod affinity or anti-affinity term.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    selector: LabelSelector,
    namespaces: Vec<String>,
    namespace_selector: Option<LabelSelector>,
    /// The node label whose values define the topology domains.
    pub topology_key: String,
}

impl AffinityTerm {
    /// Compiles a term owned by a pod in `namespace` with `labels`.
    pub fn compile(
        namespace: &str,
        labels: &BTreeMap<String, String>,
        t: &core::PodAffinityTerm,
    ) -> Self {
        let keys = |list: &'static str, op: &'static str| {
            let keys = if list == "match" {
                &t.match_label_keys
            } else {
                &t.mismatch_label_keys
            };
            keys.iter()
                .flatten()
                .filter_map(move |k| labels.get(k).map(|v| (k.as_str(), op, v.as_str())))
        };
        let selector = compile_selector(
            t.label_selector.as_ref(),
            keys("match", "In").chain(keys("mismatch", "NotIn")),
        );
        let mut namespaces = t.namespaces.clone().unwrap_or_default();
        let namespace_selector = t
            .namespace_selector
            .as_ref()
            .map(|s| compile_selector(Some(s), std::iter::empty()));
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.push(namespace.to_owned());
        }
        AffinityTerm {
            selector,
            namespaces,
            namespace_selector,
            topology_key: t.topology_key.clone(),
        }
    }

    /// Whether `pod` is selected by this term (namespace and labels).
    pub fn matches(&self, pod: &PodInfo, ns_labels: &NamespaceLabels) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                static EMPTY: BTreeMap<String, String> = BTreeMap::new();
                s.matches(ns_labels.get(&pod.namespace).unwrap_or(&EMPTY))
            });
        ns_ok && self.selector.matches(&pod.labels)
    }
}

/// A compiled preferred term with its weight.
#[derive(Debug, Clone)]
pub struct WeightedTerm {
    /// 1–100.
    pub weight: i64,
    /// The term.
    pub term: AffinityTerm,
}

/// All (anti-)affinity terms of a pod.
#[derive(Debug, Clone, Default)]
pub struct PodAffinity {
    /// Required affinity: every term needs a matching pod in the node's domain.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required anti-affinity: no matching pod may be in the node's domain.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred affinity (scoring).
    pub preferred_affinity: Vec<WeightedTerm>,
    /// Preferred anti-affinity (scoring).
    pub preferred_anti_affinity: Vec<WeightedTerm>,
}

impl PodAffinity {
    /// Compiles the terms of a pod in `namespace` with `labels`.
    pub fn compile(
        namespace: &str,
        labels: &BTreeMap<String, String>,
        affinity: Option<&core::Affinity>,
    ) -> Self {
        let Some(a) = affinity else {
            return Self::default();
        };
        let required = |terms: Option<&Vec<core::PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::compile(namespace, labels, t))
                .collect()
        };
        let preferred = |terms: Option<&Vec<core::WeightedPodAffinityTerm>>| -> Vec<WeightedTerm> {
            terms
                .into_iter()
                .flatten()
                .filter(|w| w.weight != 0)
                .map(|w| WeightedTerm {
                    weight: i64::from(w.weight),
                    term: AffinityTerm::compile(namespace, labels, &w.pod_affinity_term),
                })
                .collect()
        };
        let aff = a.pod_affinity.as_ref();
        let anti = a.pod_anti_affinity.as_ref();
        PodAffinity {
            required_affinity: required(aff.and_then(|x| {
                x.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: required(anti.and_then(|x| {
                x.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(aff.and_then(|x| {
                x.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: preferred(anti.and_then(|x| {
                x.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
        }
    }

    /// True when the pod has no terms at all.
    pub fn is_empty(&self) -> bool {
        self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{pod, term};

    #[test]
    fn namespaces_default_to_the_owner_pod() {
        let t = AffinityTerm::compile("team-a", &BTreeMap::new(), &term("app", "db", "zone"));
        let same = PodInfo::from_pod(&pod("x").ns("team-a").label("app", "db").build());
        let other = PodInfo::from_pod(&pod("x").ns("team-b").label("app", "db").build());
        let nolabel = PodInfo::from_pod(&pod("x").ns("team-a").build());
        let ns = NamespaceLabels::new();
        assert!(t.matches(&same, &ns));
        assert!(!t.matches(&other, &ns));
        assert!(!t.matches(&nolabel, &ns));
    }

    #[test]
    fn namespace_selector_and_missing_selector() {
        let mut api = term("app", "db", "zone");
        api.namespace_selector = Some(ApiSelector {
            match_labels: Some([("env".to_owned(), "prod".to_owned())].into()),
            ..Default::default()
        });
        let t = AffinityTerm::compile("a", &BTreeMap::new(), &api);
        let mut ns = NamespaceLabels::new();
        ns.insert("p".into(), [("env".to_owned(), "prod".to_owned())].into());
        let in_prod = PodInfo::from_pod(&pod("x").ns("p").label("app", "db").build());
        let in_a = PodInfo::from_pod(&pod("x").ns("a").label("app", "db").build());
        assert!(t.matches(&in_prod, &ns));
        assert!(
            !t.matches(&in_a, &ns),
            "namespaceSelector replaces the default namespace"
        );

        let mut none = term("app", "db", "zone");
        none.label_selector = None;
        let t = AffinityTerm::compile("p", &BTreeMap::new(), &none);
        assert!(!t.matches(&in_prod, &ns), "nil selector selects nothing");
    }

    #[test]
    fn match_label_keys_narrow_the_selector() {
        let mut api = term("app", "web", "zone");
        api.match_label_keys = Some(vec!["rev".into(), "absent".into()]);
        let owner_labels: BTreeMap<String, String> = [
            ("app".to_owned(), "web".to_owned()),
            ("rev".to_owned(), "2".to_owned()),
        ]
        .into();
        let t = AffinityTerm::compile("default", &owner_labels, &api);
        let ns = NamespaceLabels::new();
        let rev2 = PodInfo::from_pod(&pod("x").label("app", "web").label("rev", "2").build());
        let rev1 = PodInfo::from_pod(&pod("x").label("app", "web").label("rev", "1").build());
        assert!(t.matches(&rev2, &ns));
        assert!(!t.matches(&rev1, &ns));
    }
}
