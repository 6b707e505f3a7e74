//! `skiff agent image load FILE`, `skiff agent image ls` and `skiff agent image build-examples`:
//! the node's image store from the command line, like `kind load image-archive` and
//! `crictl images`.

use std::path::PathBuf;

use kubelet::image::Store;
use kubelet::image::archive::load_archive;

/// Where the agent keeps its state unless `--data-dir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/skiff/agent";

/// `skiff agent image ...`.
#[derive(clap::Args, Debug)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
    /// The agent's data dir; images live in `<data-dir>/images`.
    #[arg(long, global = true, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

#[derive(clap::Subcommand, Debug)]
enum ImageCommand {
    /// Loads the images of an OCI image layout archive (tar or tar.gz) into the node's store.
    Load {
        /// The archive, e.g. from `skopeo copy ... oci-archive:FILE:NAME` or `docker save`.
        file: PathBuf,
    },
    /// Lists the images in the node's store.
    Ls,
    /// Builds the example images (examples/images) offline from the host's static busybox
    /// (Debian's `busybox-static`) into the node's store.
    BuildExamples {
        /// The static busybox binary to build from.
        #[arg(long, default_value = kubelet::image::build::HOST_BUSYBOX)]
        busybox: PathBuf,
    },
}

/// Runs the image command; a failure is printed as one line and exits with status 1.
pub async fn run(args: ImageArgs) {
    let result = tokio::task::spawn_blocking(move || execute(args))
        .await
        .unwrap_or_else(|e| Err(format!("image command failed: {e}")));
    match result {
        Ok(output) => print!("{output}"),
        Err(message) => {
            eprintln!("skiff: {message}");
            std::process::exit(1);
        }
    }
}

fn execute(args: ImageArgs) -> Result<String, String> {
    let store = Store::open(args.data_dir.join("images")).map_err(|e| e.to_string())?;
    match args.command {
        ImageCommand::Load { file } => {
            let loaded = load_archive(&store, &file).map_err(|e| e.to_string())?;
            Ok(loaded
                .iter()
                .map(|image| format!("loaded {} ({})\n", image.name, short(&image.digest)))
                .collect())
        }
        ImageCommand::Ls => {
            let images = store.list().map_err(|e| e.to_string())?;
            Ok(format_table(&images))
        }
        ImageCommand::BuildExamples { busybox } => {
            let built = build_examples(&store, &busybox).map_err(|e| e.to_string())?;
            Ok(built
                .iter()
                .map(|(name, digest)| format!("built {name} ({})\n", short(digest)))
                .collect())
        }
    }
}

/// Stores every example image: the busybox layer shared by all, plus a layer with the image's
/// script. Returns `(name, manifest digest)` pairs.
pub fn build_examples(
    store: &Store,
    busybox: &std::path::Path,
) -> kubelet::error::Result<Vec<(String, String)>> {
    use kubelet::image::build::{Entry, busybox_layer, layer, store_image};
    let base = busybox_layer(busybox)?;
    let mut built = Vec::new();
    for recipe in skiff_examples::IMAGES {
        let dir = recipe.script_path.rsplit_once('/').map_or("", |(d, _)| d);
        let app = layer(&[
            Entry::Dir(dir),
            Entry::File(recipe.script_path, recipe.script.as_bytes(), 0o755),
        ])?;
        let mut env = vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
        env.extend(recipe.env);
        let config = serde_json::json!({
            "Cmd": [format!("/{}", recipe.script_path)],
            "Env": env,
        });
        let digest = store_image(store, recipe.name, &[base.clone(), app], config)?;
        built.push((recipe.name.to_string(), digest));
    }
    Ok(built)
}

/// `crictl images`-style table: IMAGE, TAG, DIGEST, SIZE.
fn format_table(images: &[kubelet::image::store::ImageEntry]) -> String {
    let rows: Vec<[String; 4]> = images
        .iter()
        .map(|image| {
            let (name, tag) = split_tag(&image.name);
            [name, tag, short(&image.digest), human_size(image.size)]
        })
        .collect();
    let header = ["IMAGE", "TAG", "DIGEST", "SIZE"].map(String::from);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

fn split_tag(name: &str) -> (String, String) {
    if let Some((name, digest)) = name.split_once('@') {
        let (name, _) = split_tag(name);
        return (name, format!("@{}", short(digest)));
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => (
            name[..last_slash + i].to_string(),
            name[last_slash + i + 1..].to_string(),
        ),
        None => (name.to_string(), "<none>".to_string()),
    }
}

fn short(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(13)
        .collect()
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_names_for_the_table() {
        let cases = [
            (
                "docker.io/library/busybox:latest",
                ("docker.io/library/busybox", "latest"),
            ),
            ("127.0.0.1:5000/app:v1", ("127.0.0.1:5000/app", "v1")),
            ("127.0.0.1:5000/app", ("127.0.0.1:5000/app", "<none>")),
        ];
        for (input, (name, tag)) in cases {
            assert_eq!(
                split_tag(input),
                (name.to_string(), tag.to_string()),
                "{input}"
            );
        }
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500_000), "1.5MB");
    }
}
