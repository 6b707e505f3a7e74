//! Image references as Kubernetes and containerd read them.
//!
//! `busybox` means `docker.io/library/busybox:latest`: the first path component is a registry only
//! when it looks like a host (has a `.` or `:`, or is `localhost`); Docker Hub's single-component
//! names live under `library/`; a reference with neither tag nor digest gets the tag `latest`.

use std::fmt;

use crate::error::Error;

/// The registry a reference without a host points to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag a reference without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";

/// A normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageReference {
    /// Host (and port) of the registry, `docker.io` for Docker Hub.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/busybox`.
    pub repository: String,
    /// Tag, if any (`latest` when neither tag nor digest was written).
    pub tag: Option<String>,
    /// Content digest `sha256:<hex>`, if any; a digest wins over a tag when pulling.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses and normalizes `image` the way Kubernetes does before pulling.
    pub fn parse(image: &str) -> Result<Self, Error> {
        let invalid = |message: &str| Error::InvalidImageName {
            image: image.to_string(),
            message: message.to_string(),
        };
        if image.is_empty() {
            return Err(invalid("empty reference"));
        }
        if image.len() > 4096 || image.chars().any(|c| c.is_whitespace()) {
            return Err(invalid("invalid reference format"));
        }
        let (name_and_tag, digest) = match image.split_once('@') {
            Some((rest, digest)) => {
                if !is_digest(digest) {
                    return Err(invalid("invalid digest (want sha256:<64 lowercase hex>)"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (image, None),
        };
        // A tag is after the last ':' that comes after the last '/' (a ':' before it is a port).
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                let tag = &name_and_tag[at + 1..];
                if !is_tag(tag) {
                    return Err(invalid("invalid tag"));
                }
                (&name_and_tag[..at], Some(tag.to_string()))
            }
            None => (name_and_tag, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if looks_like_host(first) => (first.to_string(), rest.to_string()),
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        if !is_host(&registry) {
            return Err(invalid("invalid registry host"));
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if repository.split('/').any(|c| !is_path_component(c)) {
            return Err(invalid(
                "repository name must be lowercase alphanumerics separated by '.', '_', '__' or '-'",
            ));
        }
        if registry.len() + 1 + repository.len() > 255 {
            return Err(invalid(
                "repository name must not be more than 255 characters",
            ));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(ImageReference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn reference_part(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageReference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        ImageReference::parse(s)
    }
}

/// Whether `s` is a `sha256:` digest with 64 lowercase hex characters (the only algorithm
/// Skiff stores).
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn looks_like_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

fn is_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    port_ok && name_ok
}

fn is_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+` runs joined by one of `.`, `_`, `__` or any number of `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalizes_like_kubernetes() {
        let d = |s: &str| s.replace("DIGEST", D);
        let cases: Vec<(String, String)> = vec![
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/busybox:1", "docker.io/library/busybox:1"),
            ("bitnami/nginx:1.25", "docker.io/bitnami/nginx:1.25"),
            ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:v1", "localhost:5000/app:v1"),
            ("127.0.0.1:5000/team/app", "127.0.0.1:5000/team/app:latest"),
            (
                "registry.example.com/a/b/c:t_1.0-x",
                "registry.example.com/a/b/c:t_1.0-x",
            ),
            ("busybox@DIGEST", "docker.io/library/busybox@DIGEST"),
            (
                "busybox:1.36@DIGEST",
                "docker.io/library/busybox:1.36@DIGEST",
            ),
            ("my-app__x.y:latest", "docker.io/library/my-app__x.y:latest"),
        ]
        .into_iter()
        .map(|(a, b)| (d(a), d(b)))
        .collect();
        for (input, want) in cases {
            let got = ImageReference::parse(&input).map(|r| r.to_string());
            assert_eq!(got.ok().as_deref(), Some(want.as_str()), "{input}");
        }
    }

    #[test]
    fn splits_parts() {
        let r = ImageReference::parse("localhost:5000/team/app:v1").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.reference_part(), "v1");
        let r = ImageReference::parse(&format!("app:v1@{D}")).unwrap();
        assert_eq!(r.reference_part(), D, "a digest wins over the tag");
        assert_eq!(r.name(), "docker.io/library/app");
    }

    #[test]
    fn rejects_invalid_names() {
        let cases = [
            "",
            "Busybox",
            "busybox:",
            "busybox::1",
            "busybox@sha256:abc",
            "busybox@md5:0123",
            "-busybox",
            "busy--box-",
            "a//b",
            "with space",
            "reg.io/",
            "busybox:-tag",
            "host:port:99/x",
            "a/b.:c",
        ];
        for input in cases {
            let err = ImageReference::parse(input);
            assert!(
                matches!(err, Err(Error::InvalidImageName { .. })),
                "{input:?} should be invalid, got {err:?}"
            );
        }
        let long_tag = format!("busybox:{}", "a".repeat(129));
        assert!(ImageReference::parse(&long_tag).is_err());
    }
}
