//! Test support for image tests: OCI images built in Rust from the host's static busybox, a
//! real `docker-registry` on a free loopback port, pushes over the distribution API and OCI
//! archives. Nothing here talks to anything but 127.0.0.1.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use sha2::{Digest, Sha256};

/// One file (or whiteout marker) of a test layer.
pub enum Item<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
}

/// A layer: gzip-compressed tar plus its diff id.
#[derive(Clone)]
pub struct Layer {
    pub gz: Vec<u8>,
    pub diff_id: String,
}

impl Layer {
    pub fn digest(&self) -> String {
        sha256(&self.gz)
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn layer(items: &[Item<'_>]) -> Layer {
    let mut builder = tar::Builder::new(Vec::new());
    for item in items {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        match item {
            Item::File(path, content, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(content.len() as u64);
                header.set_mode(*mode);
                header.set_cksum();
                builder.append_data(&mut header, path, *content).unwrap();
            }
            Item::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_mode(0o755);
                header.set_cksum();
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
        }
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    Layer {
        diff_id: sha256(&tar),
        gz: gz.finish().unwrap(),
    }
}

/// The base layer: the host's static busybox plus a few files.
pub fn base_layer() -> Layer {
    let busybox =
        std::fs::read("/bin/busybox").expect("busybox-static (/bin/busybox) is installed");
    layer(&[
        Item::Dir("bin"),
        Item::File("bin/busybox", &busybox, 0o755),
        Item::Dir("etc"),
        Item::File("etc/base.txt", b"from the base layer\n", 0o644),
        Item::File("etc/remove-me.txt", b"deleted by the top layer\n", 0o644),
        Item::Dir("data"),
        Item::File("data/old.txt", b"hidden by the opaque dir\n", 0o644),
    ])
}

/// A layer on top of [`base_layer`]: a new file, a whiteout and an opaque directory.
pub fn top_layer(marker: &str) -> Layer {
    layer(&[
        Item::File("etc/top.txt", marker.as_bytes(), 0o644),
        Item::File("etc/.wh.remove-me.txt", b"", 0o644),
        Item::Dir("data"),
        Item::File("data/.wh..wh..opq", b"", 0o644),
        Item::File("data/new.txt", b"only this one\n", 0o644),
    ])
}

/// A test image: layers bottom first plus a config.
pub struct TestImage {
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
}

impl TestImage {
    pub fn new(layers: Vec<Layer>) -> TestImage {
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/busybox", "sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        TestImage {
            layers,
            config: serde_json::to_vec(&config).unwrap(),
        }
    }

    fn oci_layers(&self) -> Vec<ImageLayer> {
        self.layers
            .iter()
            .map(|l| ImageLayer::oci_v1_gzip(l.gz.clone(), None))
            .collect()
    }

    fn oci_config(&self) -> Config {
        Config::oci_v1(self.config.clone(), None)
    }

    pub fn manifest_bytes(&self) -> Vec<u8> {
        let manifest = OciImageManifest::build(&self.oci_layers(), &self.oci_config(), None);
        serde_json::to_vec(&manifest).unwrap()
    }

    /// Writes an OCI image layout archive naming this image `name`.
    pub fn write_archive(&self, path: &Path, name: &str) {
        let manifest = self.manifest_bytes();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha256(&manifest),
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": name},
            }],
        });
        let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
        let mut add = |path: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_cksum();
            builder.append_data(&mut header, path, bytes).unwrap();
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        for blob in std::iter::once(&self.config)
            .chain(self.layers.iter().map(|l| &l.gz))
            .chain(std::iter::once(&manifest))
        {
            add(&format!("blobs/sha256/{}", &sha256(blob)[7..]), blob);
        }
        add("index.json", &serde_json::to_vec(&index).unwrap());
        builder.into_inner().unwrap().sync_all().unwrap();
    }
}

/// A real `docker-registry` on 127.0.0.1, stopped on drop.
pub struct Registry {
    pub addr: String,
    pub storage: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
    pub auth: Option<(String, String)>,
}

impl Registry {
    /// Starts a registry; with `auth`, it requires these basic credentials (htpasswd).
    pub async fn start(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            storage.display()
        );
        if let Some((user, password)) = auth {
            let hash = bcrypt::hash(password, 4).unwrap();
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed (scripts/install-deps.sh)");
        let registry = Registry {
            addr,
            storage,
            child: Some(child),
            _dir: dir,
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        registry
    }

    /// Stops the registry (further pulls fail to connect).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `127.0.0.1:PORT/repo:tag`.
    pub fn image(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.addr)
    }

    fn auth(&self) -> RegistryAuth {
        match &self.auth {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// Pushes `image` as `repo:tag` over the distribution API; returns the manifest digest.
    pub async fn push(&self, repo_tag: &str, image: &TestImage) -> String {
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..ClientConfig::default()
        });
        let reference: oci_client::Reference = self.image(repo_tag).parse().unwrap();
        let layers = image.oci_layers();
        let config = image.oci_config();
        let manifest = OciImageManifest::build(&layers, &config, None);
        client
            .push(&reference, &layers, config, &self.auth(), Some(manifest))
            .await
            .expect("push to the test registry");
        client
            .fetch_manifest_digest(&reference, &self.auth())
            .await
            .unwrap()
    }

    /// Overwrites a stored blob with other bytes of the same length, so the registry serves
    /// content that does not match its digest.
    pub fn corrupt_blob(&self, digest: &str) {
        let hex = &digest[7..];
        let path = self.storage.join(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ));
        let mut bytes = std::fs::read(&path).unwrap();
        for b in bytes.iter_mut().take(64) {
            *b ^= 0xff;
        }
        std::fs::write(&path, bytes).unwrap();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether the test runs as root (overlay mounts and whiteouts need it); prints why it skips.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!(
            "skipping {test}: needs root (overlay mounts and whiteout devices); CI runs as root"
        );
    }
    root
}

pub fn metadata(path: &Path) -> Option<std::fs::Metadata> {
    std::fs::symlink_metadata(path).ok()
}
