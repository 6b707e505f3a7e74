//! Strategies (stub until the strategy branch lands).
use serde_json::Value;
use crate::error::Cause;
pub struct Decoded { pub object: Value, pub unknown_fields: Vec<String> }
pub struct KindStrategy {
    pub decode: fn(Value) -> Result<Decoded, String>,
    pub default: fn(&mut Value),
    pub validate: fn(&Value) -> Vec<Cause>,
    pub validate_update: fn(&Value, &Value) -> Vec<Cause>,
}
static S: KindStrategy = KindStrategy { decode: |v| Ok(Decoded { object: v, unknown_fields: vec![] }), default: |_| {}, validate: |_| vec![], validate_update: |_, _| vec![] };
pub fn strategy_for(_g: &str, _k: &str) -> &'static KindStrategy { &S }
