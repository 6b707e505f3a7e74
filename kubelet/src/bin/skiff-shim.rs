//! The per-container shim as its own small executable, for tests and for installations that
//! prefer it to `skiff agent shim` (both call [`kubelet::shim::main`]).

fn main() -> std::process::ExitCode {
    kubelet::shim::main(std::env::args_os().skip(1))
}
