//! Image pulls, archives and container root filesystems against a real `docker-registry` on
//! loopback and real overlay mounts.

mod support;

use std::sync::Arc;

use kubelet::Error;
use kubelet::image::archive::load_archive;
use kubelet::image::rootfs;
use kubelet::image::{
    Credentials, DockerConfig, ImageReference, PullPolicy, Puller, PullerConfig, Store,
};
use support::{Registry, TestImage, base_layer, root_or_skip, top_layer};

fn puller(dir: &std::path::Path) -> Puller {
    Puller::new(Arc::new(Store::open(dir).unwrap()), PullerConfig::default())
}

#[tokio::test]
async fn pulls_by_tag_and_digest_and_shares_layers() {
    if !root_or_skip("pulls_by_tag_and_digest_and_shares_layers") {
        return;
    }
    let mut registry = Registry::start(None).await;
    let base = base_layer();
    let app = TestImage::new(vec![base.clone(), top_layer("app")]);
    let other = TestImage::new(vec![base.clone(), top_layer("other")]);
    let app_digest = registry.push("team/app:v1", &app).await;
    registry.push("team/other:v1", &other).await;

    let dir = tempfile::tempdir().unwrap();
    let puller = puller(dir.path());
    let pulled = puller
        .ensure_image(
            &registry.image("team/app:v1"),
            PullPolicy::IfNotPresent,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(pulled.name, format!("{}/team/app:v1", registry.addr));
    assert_eq!(pulled.digest, app_digest);
    assert_eq!(pulled.layers.len(), 2);
    assert!(
        pulled.layers[0].join("etc/top.txt").is_file(),
        "top layer first"
    );
    assert!(pulled.layers[1].join("bin/busybox").is_file());
    assert_eq!(puller.blob_fetches(), 3, "config + two layers");

    // The second image shares the base layer: only its config and top layer are downloaded.
    let other_pulled = puller
        .ensure_image(&registry.image("team/other:v1"), PullPolicy::Always, &[])
        .await
        .unwrap();
    assert_eq!(puller.blob_fetches(), 5);
    assert_eq!(
        other_pulled.layers[1], pulled.layers[1],
        "base layer unpacked once"
    );

    // By digest: everything is present, so only the manifest is fetched.
    let by_digest = format!("{}/team/app@{app_digest}", registry.addr);
    let manifests_before = puller.manifest_fetches();
    let pulled_digest = puller
        .ensure_image(&by_digest, PullPolicy::Always, &[])
        .await
        .unwrap();
    assert_eq!(pulled_digest.digest, app_digest);
    assert_eq!(puller.manifest_fetches(), manifests_before + 1);
    assert_eq!(puller.blob_fetches(), 5);

    // IfNotPresent with the image present never contacts the (now stopped) registry.
    registry.stop();
    let again = puller
        .ensure_image(
            &registry.image("team/app:v1"),
            PullPolicy::IfNotPresent,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(again.digest, app_digest);
    let err = puller
        .ensure_image(&registry.image("team/app:v1"), PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("ErrImagePull"), "{err}");

    let names: Vec<String> = puller
        .store()
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[tokio::test]
async fn pull_failures_carry_kubernetes_reasons() {
    let registry = Registry::start(None).await;
    let base_only = TestImage::new(vec![support::layer(&[support::Item::File(
        "hello.txt",
        b"hi",
        0o644,
    )])]);
    let digest = registry.push("solo:v1", &base_only).await;
    let dir = tempfile::tempdir().unwrap();
    let puller = puller(dir.path());

    let err = puller
        .ensure_image(
            &registry.image("solo:missing"),
            PullPolicy::IfNotPresent,
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::ErrImagePull { .. }), "{err:?}");
    assert!(
        err.to_string().contains("manifest unknown"),
        "registry's message: {err}"
    );

    let err = puller
        .ensure_image(&registry.image("solo:v1"), PullPolicy::Never, &[])
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("ErrImageNeverPull"), "{err}");
    assert_eq!(
        puller.manifest_fetches(),
        1,
        "Never does not contact the registry"
    );

    let err = puller
        .ensure_image("Not/Valid:Name", PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("InvalidImageName"), "{err}");

    // A blob whose content does not match its digest never enters the store.
    let layer_digest = base_only.layers[0].digest();
    registry.corrupt_blob(&layer_digest);
    let err = puller
        .ensure_image(&registry.image("solo:v1"), PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("ErrImagePull"), "{err}");
    assert!(
        !puller.store().has_blob(&layer_digest),
        "corrupt blob stored: {err}"
    );
    assert!(
        puller
            .store()
            .get(&registry.image("solo:v1"))
            .unwrap()
            .is_none()
    );
    let _ = digest;
}

#[tokio::test]
async fn pulls_with_basic_credentials_from_a_dockerconfigjson() {
    let registry = Registry::start(Some(("skiff", "s3cret"))).await;
    let image = TestImage::new(vec![support::layer(&[support::Item::File(
        "a", b"a", 0o644,
    )])]);
    registry.push("private:v1", &image).await;
    let dir = tempfile::tempdir().unwrap();
    let puller = puller(dir.path());
    let name = registry.image("private:v1");

    let err = puller
        .ensure_image(&name, PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.reason(),
        Some("ErrImagePull"),
        "anonymous is refused: {err}"
    );

    let secret = format!(
        r#"{{"auths":{{"{}":{{"username":"skiff","password":"s3cret"}}}}}}"#,
        registry.addr
    );
    let config = DockerConfig::parse(secret.as_bytes()).unwrap();
    let credentials = config.matching(&ImageReference::parse(&name).unwrap());
    assert_eq!(credentials.len(), 1);
    let wrong = Credentials {
        username: "skiff".into(),
        password: "wrong".into(),
    };
    let err = puller
        .ensure_image(&name, PullPolicy::Always, std::slice::from_ref(&wrong))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some("ErrImagePull"), "{err}");
    // Each matching credential is tried in order; the right one succeeds.
    let pulled = puller
        .ensure_image(&name, PullPolicy::Always, &[wrong, credentials[0].clone()])
        .await
        .unwrap();
    assert_eq!(pulled.name, name);
}

#[tokio::test]
async fn loads_an_oci_archive_and_mounts_an_overlay_rootfs() {
    if !root_or_skip("loads_an_oci_archive_and_mounts_an_overlay_rootfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = TestImage::new(vec![base_layer(), top_layer("archived")]);
    let archive = dir.path().join("image.tar");
    image.write_archive(&archive, "example.com/tools/box:1.0");
    let store = Store::open(dir.path().join("store")).unwrap();
    let loaded = load_archive(&store, &archive).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].name, "example.com/tools/box:1.0");
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, loaded[0].digest);

    let layers = store.image_layers("example.com/tools/box:1.0").unwrap();
    let container = dir.path().join("containers/c1");
    let mounted = rootfs::mount(&layers, &container).unwrap();
    let root = &mounted.rootfs;
    let teardown_guard = scopeguard(container.clone());
    assert_eq!(
        std::fs::read_to_string(root.join("etc/base.txt")).unwrap(),
        "from the base layer\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/top.txt")).unwrap(),
        "archived"
    );
    assert!(root.join("bin/busybox").is_file());
    assert!(
        !root.join("etc/remove-me.txt").exists(),
        "whiteout hides the lower file"
    );
    assert!(
        !root.join("data/old.txt").exists(),
        "opaque dir hides the lower content"
    );
    assert!(root.join("data/new.txt").is_file());

    std::fs::write(root.join("etc/written.txt"), "by the container").unwrap();
    std::fs::write(root.join("etc/base.txt"), "changed").unwrap();
    assert!(
        mounted.upper.join("etc/written.txt").is_file(),
        "writes land in the upper dir"
    );
    for layer in &layers {
        assert!(!layer.join("etc/written.txt").exists());
    }
    assert_eq!(
        std::fs::read_to_string(layers[1].join("etc/base.txt")).unwrap(),
        "from the base layer\n",
        "copy-up leaves the image layer alone"
    );

    drop(teardown_guard);
    assert!(!container.exists(), "the writable layer is discarded");
    assert!(
        layers[1].join("etc/remove-me.txt").is_file(),
        "image layers stay untouched"
    );
    assert!(layers[1].join("etc/base.txt").is_file());

    // A second container gets a fresh writable layer.
    let second = rootfs::mount(&layers, &dir.path().join("containers/c2")).unwrap();
    assert!(!second.rootfs.join("etc/written.txt").exists());
    rootfs::teardown(&second.dir).unwrap();

    // Not an archive at all: a one-line error, no panic.
    std::fs::write(dir.path().join("junk.tar"), b"junk").unwrap();
    assert!(load_archive(&store, &dir.path().join("junk.tar")).is_err());
}

/// Tears the container down even when an assertion fails, so no mount is left behind.
struct Teardown(std::path::PathBuf);
impl Drop for Teardown {
    fn drop(&mut self) {
        rootfs::teardown(&self.0).unwrap();
    }
}
fn scopeguard(dir: std::path::PathBuf) -> Teardown {
    Teardown(dir)
}
