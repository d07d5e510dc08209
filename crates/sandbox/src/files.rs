//! The job's own `/work` directory: writing input files and collecting output files.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use wasmq_spec::{FileContent, JobResult, Rejection, codes};

/// Decodes the job's input files, so bad base64 is refused before anything runs.
pub(crate) fn decode_inputs(
    files: &BTreeMap<String, FileContent>,
) -> Result<Vec<(&str, Vec<u8>)>, Rejection> {
    files
        .iter()
        .map(|(path, content)| {
            content.to_bytes().map(|b| (path.as_str(), b)).map_err(|e| {
                Rejection::new(
                    codes::INVALID_BASE64,
                    format!("files[{path:?}].base64 does not decode: {e}"),
                )
            })
        })
        .collect()
}

/// Writes input files below `dir` (paths were checked to be relative, without `..`).
pub(crate) fn write_inputs(dir: &Path, inputs: &[(&str, Vec<u8>)]) -> std::io::Result<()> {
    for (rel, bytes) in inputs {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, bytes)?;
    }
    Ok(())
}

/// Adds the files matching `patterns` under `dir` to `result`, up to `cap` bytes in all.
///
/// Only regular files whose real location is inside `dir` are read: a symlink the guest
/// left behind is never followed out of its directory. Files that do not fit are named in
/// `files_omitted`.
pub(crate) fn collect(
    dir: &Path,
    patterns: &[String],
    cap: u64,
    result: &mut JobResult,
) -> std::io::Result<()> {
    if patterns.is_empty() {
        return Ok(());
    }
    let root = dir.canonicalize()?;
    let base = glob::Pattern::escape(&root.to_string_lossy());
    let mut used: u64 = 0;
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    for pattern in patterns {
        let full = format!("{base}/{pattern}");
        let Ok(paths) = glob::glob_with(&full, options) else {
            continue;
        };
        for path in paths.flatten() {
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let Ok(real) = path.canonicalize() else {
                continue;
            };
            let Ok(rel) = real.strip_prefix(&root) else {
                continue;
            };
            let rel = rel.to_string_lossy().into_owned();
            if result.files.contains_key(&rel) || result.files_omitted.contains(&rel) {
                continue;
            }
            if used + meta.len() > cap {
                result.files_omitted.push(rel);
                continue;
            }
            let bytes = fs::read(&real)?;
            used += bytes.len() as u64;
            result.files.insert(rel, FileContent::from_bytes(bytes));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_globs_within_cap_and_skips_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::create_dir(p.join("out")).unwrap();
        fs::write(p.join("out/a.txt"), "aaaa").unwrap();
        fs::write(p.join("out/b.txt"), "bbbbbbbb").unwrap();
        fs::write(p.join("other.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", p.join("out/link.txt")).unwrap();
        let mut r = JobResult::new("j", None);
        collect(p, &["out/*.txt".into()], 6, &mut r).unwrap();
        assert_eq!(r.files.keys().collect::<Vec<_>>(), ["out/a.txt"]);
        assert_eq!(r.files_omitted, ["out/b.txt"]);
    }

    #[test]
    fn inputs_are_written_in_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = BTreeMap::new();
        files.insert(
            "in/data.bin".to_string(),
            FileContent::Binary {
                base64: "AAEC".into(),
            },
        );
        let inputs = decode_inputs(&files).unwrap();
        write_inputs(dir.path(), &inputs).unwrap();
        assert_eq!(
            fs::read(dir.path().join("in/data.bin")).unwrap(),
            vec![0, 1, 2]
        );
        files.insert(
            "bad".into(),
            FileContent::Binary {
                base64: "!!".into(),
            },
        );
        assert_eq!(
            decode_inputs(&files).unwrap_err().code,
            codes::INVALID_BASE64
        );
    }
}
