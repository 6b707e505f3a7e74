//! Running `skiffctl` and the real kubectl side by side against one `skiff server`.
//!
//! The server itself comes from the runtime crate's test support (included by path, so there
//! is one implementation of "spawn a real server").
#![allow(dead_code)]

#[path = "../../../runtime/tests/support/mod.rs"]
pub mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The real kubectl on these machines.
pub const KUBECTL: &str = "/usr/bin/kubectl";
/// The skiffctl built with these tests.
pub const SKIFFCTL: &str = env!("CARGO_BIN_EXE_skiffctl");

/// What one run printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "command failed: {}{}",
            self.stdout, self.stderr
        );
        &self.stdout
    }
}

/// Runs `bin` with `args` and a private HOME (so no user config leaks in).
pub fn run(bin: &str, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    let home = kubeconfig.parent().expect("kubeconfig dir").join("home");
    let _ = std::fs::create_dir_all(&home);
    let mut child = Command::new(bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", &home)
        .env_remove("RUST_BACKTRACE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for output");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether a table cell looks like an age (`5s`, `3m2s`, `2d`, `<unknown>`).
fn is_age(tok: &str) -> bool {
    if tok == "<unknown>" || tok == "<invalid>" {
        return true;
    }
    let mut digits = false;
    let mut units = 0;
    for c in tok.chars() {
        if c.is_ascii_digit() {
            digits = true;
        } else if "smhdy".contains(c) && digits {
            units += 1;
            digits = false;
        } else {
            return false;
        }
    }
    units > 0 && !digits
}

/// Masks ages (character for character, so alignment is still compared).
pub fn mask_ages(table: &str) -> String {
    table
        .lines()
        .map(|l| {
            l.split(' ')
                .map(|t| {
                    if is_age(t) {
                        "?".repeat(t.len())
                    } else {
                        t.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// skiffctl and kubectl against one server.
pub struct Both<'a> {
    pub server: &'a support::TestServer,
}

impl Both<'_> {
    pub fn skiffctl(&self, args: &[&str], stdin: Option<&str>) -> Out {
        run(SKIFFCTL, &self.server.kubeconfig, args, stdin)
    }

    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Out {
        run(KUBECTL, &self.server.kubeconfig, args, stdin)
    }

    /// Runs the same command with both tools until their (age-masked) outputs agree, a few
    /// times at most: controllers may change status between the two runs.
    pub fn same(&self, args: &[&str]) -> String {
        let mut last = None;
        for _ in 0..5 {
            let (a, b) = (self.skiffctl(args, None), self.kubectl(args, None));
            let (ma, mb) = (mask_ages(&a.stdout), mask_ages(&b.stdout));
            if a.code == b.code && ma == mb && a.stderr == b.stderr {
                return a.stdout;
            }
            last = Some((a, b));
            std::thread::sleep(Duration::from_millis(300));
        }
        let (a, b) = last.expect("ran");
        panic!(
            "skiffctl and kubectl differ for {args:?}\n--- skiffctl (code {}):\n{}{}\n--- kubectl (code {}):\n{}{}",
            a.code, a.stdout, a.stderr, b.code, b.stdout, b.stderr
        );
    }
}
