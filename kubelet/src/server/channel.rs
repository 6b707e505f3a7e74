//! The Kubernetes streaming channel protocol over WebSocket (`v4.channel.k8s.io`,
//! `v5.channel.k8s.io`), pure: every binary message starts with a channel byte — 0 stdin,
//! 1 stdout, 2 stderr, 3 the final status (JSON), 4 terminal resize — and v5 adds
//! `0xff <channel>` to close one stream (stdin EOF).

use serde_json::{Value, json};

/// Channel numbers.
pub const STDIN: u8 = 0;
/// Standard output.
pub const STDOUT: u8 = 1;
/// Standard error.
pub const STDERR: u8 = 2;
/// The final status.
pub const ERROR: u8 = 3;
/// Terminal size changes.
pub const RESIZE: u8 = 4;
/// v5: the next byte names a stream the sender closes.
pub const CLOSE: u8 = 0xff;

/// The subprotocols served, most preferred first.
pub const PROTOCOLS: [&str; 2] = [V5, V4];
/// v5: v4 plus stream close.
pub const V5: &str = "v5.channel.k8s.io";
/// v4: JSON status on channel 3.
pub const V4: &str = "v4.channel.k8s.io";

/// What a message from the client means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// Bytes for the command's stdin.
    Stdin(&'a [u8]),
    /// The client will send no more stdin (v5 only).
    CloseStdin,
    /// A terminal resize (ignored: commands run without a terminal).
    Resize,
    /// Anything else (unknown channels, closes of other streams, empty messages).
    Ignored,
}

/// Classifies one binary message of `protocol`.
pub fn classify<'a>(protocol: &str, data: &'a [u8]) -> Inbound<'a> {
    match data {
        [STDIN, rest @ ..] => Inbound::Stdin(rest),
        [CLOSE, STDIN] if protocol == V5 => Inbound::CloseStdin,
        [RESIZE, ..] => Inbound::Resize,
        _ => Inbound::Ignored,
    }
}

/// One message for the client on `channel`.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(channel);
    out.extend_from_slice(data);
    out
}

/// The status sent on the error channel when the command ended with `exit_code`: `Success`,
/// or `Failure`/`NonZeroExitCode` with the code as the `ExitCode` cause (kubectl exits with it).
pub fn exit_status(argv: &[String], exit_code: i32) -> Value {
    if exit_code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command {argv:?}, exit code {exit_code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": exit_code.to_string()}]},
    })
}

/// The status sent when the command could not run at all.
pub fn failure_status(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_client_messages() {
        let cases: [(&str, &[u8], Inbound); 8] = [
            (V5, b"\x00hello", Inbound::Stdin(b"hello")),
            (V4, b"\x00", Inbound::Stdin(b"")),
            (V5, b"\xff\x00", Inbound::CloseStdin),
            (V4, b"\xff\x00", Inbound::Ignored),
            (V5, b"\xff\x01", Inbound::Ignored),
            (V5, b"\x04{\"Width\":80,\"Height\":24}", Inbound::Resize),
            (V5, b"\x01out", Inbound::Ignored),
            (V5, b"", Inbound::Ignored),
        ];
        for (protocol, data, want) in cases {
            assert_eq!(classify(protocol, data), want, "{protocol} {data:?}");
        }
    }

    #[test]
    fn statuses_carry_the_exit_code() {
        let argv = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(
            exit_status(&argv, 0),
            json!({"metadata": {}, "status": "Success"})
        );
        let s = exit_status(&argv, 3);
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(
            s["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        assert_eq!(frame(STDOUT, b"x"), b"\x01x");
    }
}
