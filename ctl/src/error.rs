//! The one error type of `skiffctl`, printed the way kubectl prints its errors: a single line
//! on stderr and exit code 1.

use std::fmt;

/// Anything that makes a command fail.
#[derive(Debug)]
pub enum CtlError {
    /// The server answered with a failure `Status`: `Error from server (Reason): message`.
    Server { reason: String, message: String },
    /// Everything else, printed as `error: ...`.
    Local(String),
    /// Already reported line by line; only the exit code is left to set.
    Silent,
    /// A command run in a container (`exec`) ended with this non-zero code; skiffctl exits
    /// with it after kubectl's `command terminated with exit code N`.
    Exit(i32),
}

impl CtlError {
    /// A local error (`error: ...`).
    pub fn local(msg: impl Into<String>) -> Self {
        CtlError::Local(msg.into())
    }

    /// kubectl's `error when creating "web.yaml": ...` context for server errors about an
    /// object from a manifest.
    pub fn when(self, doing: &str, source: &str) -> Self {
        match self {
            CtlError::Server { reason, message } => CtlError::Server {
                reason,
                message: format!("error when {doing} \"{source}\": {message}"),
            },
            other => other,
        }
    }

    /// Whether this is the server's NotFound.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CtlError::Server { reason, .. } if reason == "NotFound")
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // kubectl's words for a 401: client-go does not show the server's message.
            CtlError::Server { reason, .. } if reason == "Unauthorized" => write!(
                f,
                "error: You must be logged in to the server (the server has asked for the \
                 client to provide credentials)"
            ),
            CtlError::Server { reason, message } if reason.is_empty() => {
                write!(f, "Error from server: {message}")
            }
            CtlError::Server { reason, message } => {
                write!(f, "Error from server ({reason}): {message}")
            }
            CtlError::Local(m) => write!(f, "error: {m}"),
            CtlError::Silent => Ok(()),
            CtlError::Exit(code) => write!(f, "command terminated with exit code {code}"),
        }
    }
}

impl From<runtime::Error> for CtlError {
    fn from(e: runtime::Error) -> Self {
        match e {
            runtime::Error::Api(s) => CtlError::Server {
                reason: s.reason.clone(),
                message: s.message.clone(),
            },
            other => CtlError::Local(one_line(&other.to_string())),
        }
    }
}

impl From<std::io::Error> for CtlError {
    fn from(e: std::io::Error) -> Self {
        CtlError::Local(e.to_string())
    }
}

/// Joins a multi-line message into one line so every error stays a single line.
pub fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

pub type Result<T> = std::result::Result<T, CtlError>;

#[cfg(test)]
mod tests {
    use super::CtlError;

    #[test]
    fn server_errors_print_like_kubectl() {
        let server = |reason: &str, message: &str| CtlError::Server {
            reason: reason.into(),
            message: message.into(),
        };
        let cases = [
            (
                server("NotFound", "pods \"x\" not found"),
                "Error from server (NotFound): pods \"x\" not found",
            ),
            (server("", "boom"), "Error from server: boom"),
            (
                server("Unauthorized", "Unauthorized"),
                "error: You must be logged in to the server (the server has asked for the \
                 client to provide credentials)",
            ),
            (CtlError::local("bad flag"), "error: bad flag"),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }
}
