//! stub
use std::collections::BTreeMap;
use serde_json::Value;
#[derive(Debug)] pub struct LabelSelector;
#[derive(Debug)] pub struct FieldSelector(Vec<FieldRequirement>);
#[derive(Debug)] pub struct FieldRequirement { pub field: String }
#[derive(Debug, thiserror::Error)] #[error("x")] pub struct SelectorError;
impl LabelSelector { pub fn parse(_s: &str) -> Result<Self, SelectorError> { Ok(Self) } pub fn matches(&self, _l: &BTreeMap<String,String>) -> bool { true } pub fn matches_json(&self, _v: &Value) -> bool { true } pub fn is_empty(&self) -> bool { true } pub fn from_label_selector_json(_v: &Value) -> Result<Self, SelectorError> { Ok(Self) } }
impl std::fmt::Display for LabelSelector { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "") } }
impl FieldSelector { pub fn parse(_s: &str) -> Result<Self, SelectorError> { Ok(Self(vec![])) } pub fn requirements(&self) -> &[FieldRequirement] { &self.0 } pub fn matches(&self, _g: impl Fn(&str) -> Option<String>) -> bool { true } }
