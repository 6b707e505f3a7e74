//! Printers (stub until the printers branch lands).
use serde_json::Value;
pub fn table(_g: &str, _k: &str, _o: &[Value], _rv: &str, _c: bool, _i: &str, _n: jiff::Timestamp) -> Value { Value::Null }
