//! `skiffctl`: a kubectl-like client. Its verbs arrive with issue 3; until then the real
//! `kubectl` is the client of choice against `skiff server`.

fn main() {
    eprintln!("skiffctl: no verbs yet; use kubectl with the kubeconfig that `skiff server` writes");
    std::process::exit(2);
}
