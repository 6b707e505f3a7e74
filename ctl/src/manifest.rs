//! Reading manifests for `-f`: files, directories (`-R` to recurse), `-` for stdin, several
//! YAML or JSON documents per file; errors name the file, the document and the field.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{CtlError, Result, one_line};

/// One object from a manifest, with where it came from.
pub struct Doc {
    pub object: Value,
    /// The file it came from, as given (`STDIN` for `-`), for kubectl's error prefixes.
    pub source: String,
}

/// Reads every object from the given `-f` arguments, in order. `List` documents are expanded.
pub fn read_all(files: &[String], recursive: bool) -> Result<Vec<Doc>> {
    let mut out = Vec::new();
    for f in files {
        if f == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            parse("STDIN", &s, &mut out)?;
            continue;
        }
        let p = Path::new(f);
        if p.is_dir() {
            for file in dir_files(p, recursive)? {
                let text = std::fs::read_to_string(&file)?;
                parse(&file.display().to_string(), &text, &mut out)?;
            }
        } else {
            let text = std::fs::read_to_string(p).map_err(|e| {
                CtlError::Local(format!("the path \"{f}\" does not exist")).or_io(e)
            })?;
            parse(f, &text, &mut out)?;
        }
    }
    if out.is_empty() {
        return Err(CtlError::local("no objects passed to apply"));
    }
    Ok(out)
}

trait OrIo {
    fn or_io(self, e: std::io::Error) -> CtlError;
}

impl OrIo for CtlError {
    /// Keeps kubectl's "does not exist" wording only for missing files.
    fn or_io(self, e: std::io::Error) -> CtlError {
        if e.kind() == std::io::ErrorKind::NotFound {
            self
        } else {
            CtlError::Local(e.to_string())
        }
    }
}

/// Files with kubectl's manifest extensions in a directory, sorted; subdirectories with `-R`.
fn dir_files(dir: &Path, recursive: bool) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for e in entries {
        if e.is_dir() {
            if recursive {
                out.extend(dir_files(&e, true)?);
            }
        } else if matches!(
            e.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(e);
        }
    }
    Ok(out)
}

/// Parses every document of one file.
fn parse(name: &str, text: &str, out: &mut Vec<Doc>) -> Result<()> {
    let fail = |n: usize, msg: String| {
        CtlError::Local(format!(
            "error parsing {name}: document {n}: {}",
            one_line(&msg)
        ))
    };
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let n = i + 1;
        let v = Value::deserialize(de).map_err(|e| fail(n, e.to_string()))?;
        if v.is_null() {
            continue;
        }
        if !v.is_object() {
            return Err(fail(n, "expected an object".to_string()));
        }
        for field in ["apiVersion", "kind"] {
            if !v[field].is_string() {
                return Err(fail(n, format!("{field} not set or not a string")));
            }
        }
        if v["kind"] == "List" {
            for it in v["items"].as_array().cloned().unwrap_or_default() {
                out.push(Doc {
                    object: it,
                    source: name.to_string(),
                });
            }
            continue;
        }
        if !v["metadata"]["name"].is_string() {
            return Err(fail(n, "metadata.name not set or not a string".to_string()));
        }
        out.push(Doc {
            object: v,
            source: name.to_string(),
        });
    }
    Ok(())
}
