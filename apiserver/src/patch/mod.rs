//! Patches (stub until the patch branch lands).
use serde_json::Value;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType { Json, Merge, StrategicMerge, Apply }
impl PatchType { pub fn from_content_type(_ct: &str) -> Option<PatchType> { None } }
#[derive(Debug, thiserror::Error)]
#[error("patch error")]
pub struct PatchError;
impl From<PatchError> for crate::Error { fn from(e: PatchError) -> Self { crate::Error::bad_request(e.to_string()) } }
pub fn apply_patch(_g: &str, _k: &str, o: &Value, _t: PatchType, _b: &[u8]) -> Result<Value, PatchError> { Ok(o.clone()) }
pub fn server_side_apply(_g: &str, _k: &str, _l: Option<&Value>, a: &Value, _m: &str, _f: bool, _n: &str) -> Result<Value, PatchError> { Ok(a.clone()) }
pub fn record_update(_g: &str, _k: &str, _o: Option<&Value>, _n: &mut Value, _m: &str, _now: &str) {}
