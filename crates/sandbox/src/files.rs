//! The job's own directory (at `/work` or its `work_dir`): input files in, output files out.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmq_spec::{FileContent, JobResult, Rejection, codes};

use crate::tree;

/// Per-job `/work` directories, reused: a finished job's directory is emptied and handed to
/// the next job instead of being removed and created again (on some filesystems removing a
/// directory costs a synchronous discard, tens of microseconds per job).
///
/// All of them live under one private (0700) directory of this process, removed when the
/// pool is dropped.
pub(crate) struct WorkDirs {
    root: tempfile::TempDir,
    /// Empty directories ready for a job, with an open handle on each.
    free: Mutex<Vec<(PathBuf, rustix::fs::Dir)>>,
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
    /// An open handle on the directory, kept across jobs: it tells whether the directory
    /// is empty without opening it again. Lent to the job's disk quota while it runs.
    handle: Option<rustix::fs::Dir>,
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
        let (path, handle) = match reused {
            Some(p) => p,
            None => {
                let p = self
                    .root
                    .path()
                    .join(self.next.fetch_add(1, Ordering::Relaxed).to_string());
                fs::create_dir(&p)?;
                let fd = rustix::fs::open(
                    &p,
                    rustix::fs::OFlags::RDONLY
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::NOFOLLOW
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )?;
                (p, rustix::fs::Dir::new(fd)?)
            }
        };
        Ok(WorkDir {
            path,
            pool: self,
            empty: false,
            handle: Some(handle),
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

    /// Lends the directory's open handle (to the job's disk quota).
    pub(crate) fn lend_handle(&mut self) -> Option<rustix::fs::Dir> {
        self.handle.take()
    }

    /// Takes the handle back after the job.
    pub(crate) fn return_handle(&mut self, handle: Option<rustix::fs::Dir>) {
        if handle.is_some() {
            self.handle = handle;
        }
    }
}

impl Drop for WorkDir<'_> {
    fn drop(&mut self) {
        // Reuse only a directory that is verifiably empty again; anything odd is removed.
        let mut free = self.pool.free.lock().expect("work dir lock");
        if free.len() < self.pool.keep
            && self.handle.is_some()
            && (self.empty || tree::remove_contents(&self.path).is_ok())
        {
            let handle = self.handle.take().expect("checked above");
            free.push((std::mem::take(&mut self.path), handle));
        } else {
            drop(free);
            if tree::remove_contents(&self.path).is_ok() {
                let _ = fs::remove_dir(&self.path);
            }
        }
    }
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
    max_entries: u64,
    result: &mut JobResult,
) -> std::io::Result<()> {
    if patterns.is_empty() {
        return Ok(());
    }
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let patterns: Vec<glob::Pattern> = patterns
        .iter()
        .filter_map(|p| glob::Pattern::new(p).ok())
        .collect();
    // The walk never follows a symlink, so every path it yields is a regular file inside
    // `dir`; it looks at a bounded number of entries however many the guest made.
    let found = tree::files_matching(dir, max_entries, |rel| {
        patterns.iter().any(|p| p.matches_path_with(rel, options))
    })?;
    let mut used: u64 = 0;
    for path in found {
        let rel = path.to_string_lossy().into_owned();
        let Ok(meta) = fs::symlink_metadata(dir.join(&path)) else {
            continue;
        };
        if used + meta.len() > cap {
            result.files_omitted.push(rel);
            continue;
        }
        let bytes = fs::read(dir.join(&path))?;
        used += bytes.len() as u64;
        result.files.insert(rel, FileContent::from_bytes(bytes));
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
        collect(p, &["out/*.txt".into()], 6, 1000, &mut r).unwrap();
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
