//! Bearer-token authentication: who is asking, or 401.
//!
//! Kubernetes' static-token authenticator in small: a fixed set of tokens, each naming a
//! user and groups. There is no authorization yet — any authenticated user may do anything
//! (see ARCHITECTURE "Security"). Join tokens (`K10<ca hash>::node:<secret>`) are compared by
//! their secret, and a CA hash they carry must be this cluster's.

use runtime::join::{JoinToken, secrets_equal};

use crate::error::Error;

/// A user as Kubernetes' `user.Info` describes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

/// One accepted token.
#[derive(Clone)]
pub struct TokenEntry {
    /// The secret the bearer token must carry.
    pub secret: String,
    pub user: UserInfo,
}

impl std::fmt::Debug for TokenEntry {
    /// The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub struct Authentication {
    /// The tokens accepted.
    pub tokens: Vec<TokenEntry>,
    /// Whether requests without credentials are let through as `system:anonymous`. Only
    /// the plain-HTTP loopback mode and in-process servers (benchmarks) turn this on.
    pub anonymous: bool,
    /// SHA-256 of the CA bundle; join tokens carrying another hash are refused.
    pub ca_hash: Option<String>,
}

impl Default for Authentication {
    /// Anonymous access and no tokens: what an in-process server without TLS has.
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            anonymous: true,
            ca_hash: None,
        }
    }
}

/// Paths anyone may read, credentials or not (Kubernetes' `system:public-info-viewer`,
/// plus `/cacerts` which joining machines fetch before they can trust the server).
pub fn is_public(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    matches!(
        path,
        "/cacerts" | "/version" | "/healthz" | "/livez" | "/readyz"
    ) || ["/healthz/", "/livez/", "/readyz/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// What authentication concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    User(UserInfo),
    Anonymous,
}

impl Authentication {
    /// Decides on one request from its `Authorization` header and path. A presented but
    /// wrong credential is refused even on public paths and with anonymous access on, as
    /// kube-apiserver does.
    /// With no tokens configured, credentials are ignored (nothing could check them), as
    /// kube-apiserver ignores a bearer token when no token authenticator is configured.
    pub fn authenticate(&self, authorization: Option<&str>, path: &str) -> Result<Verdict, Error> {
        let header = authorization
            .map(str::trim)
            .filter(|h| !h.is_empty() && !self.tokens.is_empty());
        let Some(header) = header else {
            return if self.anonymous || is_public(path) {
                Ok(Verdict::Anonymous)
            } else {
                Err(Error::Unauthorized)
            };
        };
        let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(Error::Unauthorized);
        }
        let parsed = JoinToken::parse(token).map_err(|_| Error::Unauthorized)?;
        if let (Some(theirs), Some(ours)) = (&parsed.ca_hash, &self.ca_hash)
            && !secrets_equal(theirs, ours)
        {
            return Err(Error::Unauthorized);
        }
        self.tokens
            .iter()
            .find(|t| secrets_equal(&t.secret, &parsed.secret))
            .map(|t| Verdict::User(t.user.clone()))
            .ok_or(Error::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "00000000000000000000000000000000000000000000000000000000000000aa";
    const OTHER: &str = "00000000000000000000000000000000000000000000000000000000000000bb";

    fn user(name: &str) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: vec!["g".into()],
        }
    }

    fn authn(anonymous: bool) -> Authentication {
        Authentication {
            tokens: vec![
                TokenEntry {
                    secret: "admin-secret".into(),
                    user: user("admin"),
                },
                TokenEntry {
                    secret: "node-secret".into(),
                    user: user("node"),
                },
            ],
            anonymous,
            ca_hash: Some(HASH.into()),
        }
    }

    #[test]
    fn verdicts() {
        let node_token = format!("Bearer K10{HASH}::node:node-secret");
        let foreign_ca = format!("Bearer K10{OTHER}::node:node-secret");
        let cases: Vec<(bool, Option<&str>, &str, Option<Verdict>)> = vec![
            (
                false,
                Some("Bearer admin-secret"),
                "/api/v1/pods",
                Some(Verdict::User(user("admin"))),
            ),
            (
                false,
                Some("bearer   admin-secret "),
                "/api",
                Some(Verdict::User(user("admin"))),
            ),
            (
                false,
                Some(&node_token),
                "/api/v1/nodes",
                Some(Verdict::User(user("node"))),
            ),
            (false, Some(&foreign_ca), "/api/v1/nodes", None),
            (false, Some("Bearer wrong"), "/api/v1/pods", None),
            (false, Some("Bearer admin-secret2"), "/api/v1/pods", None),
            (false, Some("Bearer "), "/api/v1/pods", None),
            (false, Some("Basic YWRtaW46eA=="), "/api/v1/pods", None),
            (false, None, "/api/v1/pods", None),
            (false, Some(""), "/api/v1/pods", None),
            (false, None, "/cacerts", Some(Verdict::Anonymous)),
            (false, None, "/readyz", Some(Verdict::Anonymous)),
            (false, None, "/version", Some(Verdict::Anonymous)),
            (false, Some("Bearer wrong"), "/version", None),
            (false, None, "/metrics", None),
            (false, None, "/versionx", None),
            (true, None, "/api/v1/pods", Some(Verdict::Anonymous)),
            (true, Some("Bearer wrong"), "/api/v1/pods", None),
        ];
        for (anonymous, header, path, want) in cases {
            let got = authn(anonymous).authenticate(header, path).ok();
            assert_eq!(got, want, "anonymous={anonymous} {header:?} {path}");
        }
    }

    #[test]
    fn without_tokens_credentials_are_ignored() {
        let open = Authentication::default();
        assert_eq!(
            open.authenticate(Some("Bearer anything"), "/api/v1/pods")
                .ok(),
            Some(Verdict::Anonymous)
        );
        let closed = Authentication {
            anonymous: false,
            ..Authentication::default()
        };
        assert!(closed.authenticate(Some("Bearer x"), "/api").is_err());
        assert!(closed.authenticate(None, "/readyz").is_ok());
    }

    #[test]
    fn public_paths() {
        for (path, want) in [
            ("/cacerts", true),
            ("/readyz/", true),
            ("/livez/ping", true),
            ("/healthz", true),
            ("/version/", true),
            ("/api", false),
            ("/metrics", false),
            ("/openapi/v3", false),
            ("/cacertsx", false),
        ] {
            assert_eq!(is_public(path), want, "{path}");
        }
    }
}
