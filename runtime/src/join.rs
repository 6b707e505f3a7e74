//! Join tokens: how a machine that has nothing but a server URL and a token comes to trust
//! the cluster CA and authenticate.
//!
//! Format (k3s' "secure" token shape): `K10<sha256 of the CA bundle, hex>::<user>:<secret>`,
//! e.g. `K10a3f…9c::node:4be1…`. A joining agent fetches `GET /cacerts` over TLS *without*
//! verifying the server (it cannot yet), hashes the body and accepts it as its CA only when
//! the hash equals the token's — so a man in the middle cannot substitute its own CA without
//! also knowing the token. From then on every connection verifies the server against that
//! CA and sends the whole token as `Authorization: Bearer`.
//!
//! A bare secret (no `K10…::` prefix) is accepted by the server as a token but cannot
//! bootstrap trust: the agent then needs a kubeconfig with the CA.

use sha2::{Digest, Sha256};

use crate::config::{Auth, Config, Pem, TlsConfig};
use crate::error::{Error, Result};

/// The prefix of tokens that carry the CA hash.
const PREFIX: &str = "K10";

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 of the cluster CA bundle (`/cacerts`), lowercase hex; absent in bare tokens.
    pub ca_hash: Option<String>,
    /// Who the token names (`node` for the node token); absent in bare tokens.
    pub user: Option<String>,
    /// The secret the server compares.
    pub secret: String,
}

impl JoinToken {
    /// Parses a token as written to `<data-dir>/node-token` (or a bare secret).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let bad = |why: &str| Error::Config(format!("invalid token: {why}"));
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace"));
        }
        let Some(rest) = text.strip_prefix(PREFIX).filter(|_| text.contains("::")) else {
            return Ok(JoinToken {
                ca_hash: None,
                user: None,
                secret: text.to_string(),
            });
        };
        let (hash, credentials) = rest.split_once("::").ok_or_else(|| bad("no '::'"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(
                "the CA hash after K10 must be 64 hexadecimal digits (a SHA-256)",
            ));
        }
        let (user, secret) = credentials
            .split_once(':')
            .ok_or_else(|| bad("expected K10<hash>::<user>:<secret>"))?;
        if user.is_empty() || secret.is_empty() {
            return Err(bad("the user and the secret must not be empty"));
        }
        Ok(JoinToken {
            ca_hash: Some(hash.to_ascii_lowercase()),
            user: Some(user.to_string()),
            secret: secret.to_string(),
        })
    }

    /// The full token for `ca_pem`, `user` and `secret`.
    pub fn render(ca_pem: &[u8], user: &str, secret: &str) -> String {
        format!("{PREFIX}{}::{user}:{secret}", ca_hash(ca_pem))
    }
}

/// SHA-256 of a CA bundle as it is served on `/cacerts`, lowercase hex.
pub fn ca_hash(ca_pem: &[u8]) -> String {
    hex::encode(Sha256::digest(ca_pem))
}

/// A fresh random secret (128 bits, hex) for tokens.
pub fn random_secret() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// Compares two secrets in time independent of where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `body` (from `/cacerts`) is the CA the token vouches for.
pub fn ca_matches(token: &JoinToken, body: &[u8]) -> bool {
    token
        .ca_hash
        .as_deref()
        .is_some_and(|h| secrets_equal(h, &ca_hash(body)))
}

/// How long [`bootstrap`] keeps retrying a server it cannot reach (agents are often started
/// together with, or before, their server).
const BOOTSTRAP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// A client config for `server` from a join token alone: fetches the CA from `/cacerts`,
/// checks it against the token's hash, and authenticates with the token. An unreachable
/// server is retried (with back-off, for up to a minute); a CA that does not match is not.
pub async fn bootstrap(server: &str, token_text: &str) -> Result<Config> {
    let deadline = tokio::time::Instant::now() + BOOTSTRAP_PATIENCE;
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        match bootstrap_once(server, token_text).await {
            Err(Error::Http(e)) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(error = %e, %server, "cannot reach the server yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

async fn bootstrap_once(server: &str, token_text: &str) -> Result<Config> {
    let token = JoinToken::parse(token_text)?;
    if token.ca_hash.is_none() {
        return Err(Error::Config(
            "the token carries no CA hash (K10<hash>::node:<secret>), so the server cannot be \
             trusted from it; use the full token from the server's node-token file, or a \
             kubeconfig with the CA"
                .into(),
        ));
    }
    if !server.starts_with("https://") {
        return Err(Error::Config(format!(
            "joining with a token needs an https:// server URL, not {server}"
        )));
    }
    let mut probe = Config::from_url(server);
    probe.tls.insecure = true;
    let url = format!("{}/cacerts", probe.server);
    let resp = probe.http_client()?.get(&url).send().await?;
    if !resp.status().is_success() {
        return Err(Error::Config(format!(
            "{url} answered {}: is this a Skiff server?",
            resp.status()
        )));
    }
    let body = resp.bytes().await?;
    if !ca_matches(&token, &body) {
        return Err(Error::Tls(format!(
            "the CA served at {url} does not match the token's CA hash: wrong server, or \
             someone in between"
        )));
    }
    let mut config = Config::from_url(server);
    config.tls = TlsConfig {
        ca: Some(Pem {
            source: format!("the cluster CA from {url}"),
            bytes: body.to_vec(),
        }),
        ..TlsConfig::default()
    };
    config.auth = Auth::Bearer(token_text.trim().to_string());
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "a3f1000000000000000000000000000000000000000000000000000000009c9c";

    #[test]
    fn tokens_parse() {
        let full = format!("K10{HASH}::node:s3cret");
        let cases: Vec<(String, std::result::Result<JoinToken, &str>)> = vec![
            (
                full.clone(),
                Ok(JoinToken {
                    ca_hash: Some(HASH.into()),
                    user: Some("node".into()),
                    secret: "s3cret".into(),
                }),
            ),
            (
                format!("  {full}\n"),
                Ok(JoinToken {
                    ca_hash: Some(HASH.into()),
                    user: Some("node".into()),
                    secret: "s3cret".into(),
                }),
            ),
            (
                format!("K10{}::node:s", HASH.to_uppercase()),
                Ok(JoinToken {
                    ca_hash: Some(HASH.into()),
                    user: Some("node".into()),
                    secret: "s".into(),
                }),
            ),
            (
                "bare-secret".into(),
                Ok(JoinToken {
                    ca_hash: None,
                    user: None,
                    secret: "bare-secret".into(),
                }),
            ),
            (
                "K10abc".into(),
                Ok(JoinToken {
                    ca_hash: None,
                    user: None,
                    secret: "K10abc".into(),
                }),
            ),
            ("".into(), Err("empty")),
            ("two words".into(), Err("whitespace")),
            ("K10abcd::node:s".into(), Err("64 hexadecimal")),
            (format!("K10{HASH}::nodes3cret"), Err("<user>:<secret>")),
            (format!("K10{HASH}::node:"), Err("must not be empty")),
            (format!("K10{HASH}:::s"), Err("must not be empty")),
        ];
        for (text, want) in cases {
            match (JoinToken::parse(&text), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text:?}"),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{text:?}: {e}"),
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn rendered_tokens_round_trip_and_vouch_for_their_ca() {
        let ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let text = JoinToken::render(ca, "node", "abc123");
        let token = JoinToken::parse(&text).expect("parse");
        assert_eq!(token.secret, "abc123");
        assert_eq!(token.user.as_deref(), Some("node"));
        assert!(ca_matches(&token, ca));
        assert!(!ca_matches(&token, b"another CA"));
        let bare = JoinToken::parse("abc123").expect("bare");
        assert!(!ca_matches(&bare, ca), "a bare token vouches for nothing");
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
        assert!(!secrets_equal("", "a"));
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn bootstrap_refuses_what_cannot_be_trusted() {
        let bare = bootstrap("https://127.0.0.1:1", "secret")
            .await
            .unwrap_err();
        assert!(bare.to_string().contains("no CA hash"), "{bare}");
        let token = format!("K10{HASH}::node:s");
        let plain = bootstrap("http://127.0.0.1:1", &token).await.unwrap_err();
        assert!(plain.to_string().contains("https://"), "{plain}");
    }
}
