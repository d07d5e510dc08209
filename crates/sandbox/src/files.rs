//! The job's own `/work` directory: writing input files and collecting output files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmq_spec::{FileContent, JobResult, Rejection, codes};

/// Per-job `/work` directories, reused: a finished job's directory is emptied and handed to
/// the next job instead of being removed and created again (on some filesystems removing a
/// directory costs a synchronous discard, tens of microseconds per job).
///
/// All of them live under one private (0700) directory of this process, removed when the
/// pool is dropped.
pub(crate) struct WorkDirs {
    root: tempfile::TempDir,
    /// Empty directories ready for a job.
    free: Mutex<Vec<PathBuf>>,
    /// Most directories kept for reuse.
    keep: usize,
    next: AtomicU64,
}

/// One job's directory; emptied and returned to the pool on drop.
pub(crate) struct WorkDir<'a> {
    path: PathBuf,
    pool: &'a WorkDirs,
    /// Seen empty after the job, so there is nothing to remove.
    empty: bool,
}

impl WorkDirs {
    pub(crate) fn new(parent: Option<&Path>, keep: usize) -> std::io::Result<WorkDirs> {
        let mut b = tempfile::Builder::new();
        b.prefix("wasmq-work-");
        let root = match parent {
            Some(p) => b.tempdir_in(p)?,
            None => b.tempdir()?,
        };
        Ok(WorkDirs {
            root,
            free: Mutex::new(Vec::new()),
            keep,
            next: AtomicU64::new(0),
        })
    }

    /// An empty directory for one job.
    pub(crate) fn take(&self) -> std::io::Result<WorkDir<'_>> {
        let reused = self.free.lock().expect("work dir lock").pop();
        let path = match reused {
            Some(p) => p,
            None => {
                let p = self
                    .root
                    .path()
                    .join(self.next.fetch_add(1, Ordering::Relaxed).to_string());
                fs::create_dir(&p)?;
                p
            }
        };
        Ok(WorkDir {
            path,
            pool: self,
            empty: false,
        })
    }
}

impl WorkDir<'_> {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records that the job left the directory empty (its final disk check saw no
    /// entries), which spares the walk that empties it.
    pub(crate) fn mark_empty(&mut self) {
        self.empty = true;
    }
}

/// What a job's files take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DiskUsage {
    /// Bytes: for each file the larger of its length and its allocated blocks, so a
    /// sparse file counts at its full length.
    pub(crate) bytes: u64,
    /// Files, directories and links.
    pub(crate) entries: u64,
}

/// Adds up what is below `dir`, never following symlinks, stopping as soon as either
/// total passes its limit (so a directory of a million files costs a bounded walk).
pub(crate) fn disk_usage(
    dir: &Path,
    max_bytes: u64,
    max_entries: u64,
) -> std::io::Result<DiskUsage> {
    use std::os::unix::fs::MetadataExt;
    let mut usage = DiskUsage::default();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let md = entry.metadata()?;
            usage.entries += 1;
            if md.is_dir() {
                stack.push(entry.path());
            } else {
                usage.bytes += md.len().max(md.blocks() * 512);
            }
            if usage.bytes > max_bytes || usage.entries > max_entries {
                return Ok(usage);
            }
        }
    }
    Ok(usage)
}

impl Drop for WorkDir<'_> {
    fn drop(&mut self) {
        // Reuse only a directory that is verifiably empty again; anything odd is removed.
        let mut free = self.pool.free.lock().expect("work dir lock");
        if free.len() < self.pool.keep && (self.empty || empty_dir(&self.path).is_ok()) {
            free.push(std::mem::take(&mut self.path));
        } else {
            drop(free);
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Removes everything inside `dir` (never following symlinks), leaving it empty.
fn empty_dir(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

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
    fn work_dirs_come_back_empty() {
        let parent = tempfile::tempdir().unwrap();
        let pool = WorkDirs::new(Some(parent.path()), 4).unwrap();
        let first = {
            let d = pool.take().unwrap();
            fs::create_dir_all(d.path().join("a/b")).unwrap();
            fs::write(d.path().join("a/b/f"), "x").unwrap();
            std::os::unix::fs::symlink(parent.path(), d.path().join("up")).unwrap();
            d.path().to_owned()
        };
        let again = pool.take().unwrap();
        assert_eq!(again.path(), first, "the directory is reused");
        assert_eq!(fs::read_dir(again.path()).unwrap().count(), 0, "and empty");
        assert!(
            parent.path().exists(),
            "a symlink inside is removed, not followed"
        );
        let other = pool.take().unwrap();
        assert_ne!(
            other.path(),
            again.path(),
            "a directory in use is never handed out twice"
        );
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
