//! The etcd backend (arrives with the storage branch).
use async_trait::async_trait;
use bytes::Bytes;
use super::*;
/// Placeholder until the etcd backend lands.
pub struct EtcdStore;
impl EtcdStore {
    /// Connects to etcd.
    pub async fn connect(_e: &[String]) -> Result<Self, StorageError> { Err(StorageError::Unavailable("etcd backend not merged yet".into())) }
}
#[async_trait]
impl Store for EtcdStore {
    async fn create(&self, _k: &str, _v: Bytes) -> Result<i64, StorageError> { unreachable!() }
    async fn update(&self, _k: &str, _v: Bytes, _e: i64) -> Result<i64, StorageError> { unreachable!() }
    async fn delete(&self, _k: &str, _e: Option<i64>) -> Result<(KeyValue, i64), StorageError> { unreachable!() }
    async fn get(&self, _k: &str) -> Result<Option<KeyValue>, StorageError> { unreachable!() }
    async fn range(&self, _p: &str) -> Result<(Vec<KeyValue>, i64), StorageError> { unreachable!() }
    async fn watch(&self, _p: &str, _f: i64) -> Result<EventStream, StorageError> { unreachable!() }
    async fn current_revision(&self) -> Result<i64, StorageError> { unreachable!() }
    async fn request_progress(&self) -> Result<(), StorageError> { unreachable!() }
    async fn compact(&self, _r: i64) -> Result<(), StorageError> { unreachable!() }
}
