//! Walking and removing what a guest left in its `/work`, whatever shape it has.
//!
//! A guest controls that tree: it may nest directories thousands deep (past `PATH_MAX`),
//! leave symlink loops, or create a million files. So nothing here recurses on the
//! stack, follows a symlink, or builds a path longer than the tree's depth allows:
//! - [`remove_contents`] empties a directory of any depth with directory handles, one
//!   level at a time, keeping one handle open;
//! - [`usage`] and [`files_matching`] walk by path, never follow symlinks, and stop at a
//!   bound (an error past it, or a limit on what they visit), so their cost is bounded too.

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Deepest directory nesting a job's `/work` may have (measuring it deeper is refused).
pub(crate) const MAX_DEPTH: usize = 128;

fn open_dir(at: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Removes everything inside `dir`, never following a symlink, at any depth.
pub(crate) fn remove_contents(dir: &Path) -> io::Result<()> {
    let mut cur = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Names from `dir` down to `cur`.
    let mut names: Vec<CString> = Vec::new();
    loop {
        let mut child = None;
        let mut entries = Dir::read_from(&cur)?;
        while let Some(entry) = entries.read() {
            let entry = entry?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let is_dir = match entry.file_type() {
                FileType::Unknown => rustix::fs::statat(&cur, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)?,
                t => t == FileType::Directory,
            };
            if !is_dir {
                match rustix::fs::unlinkat(&cur, name, AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            match rustix::fs::unlinkat(&cur, name, AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => continue,
                Err(Errno::NOTEMPTY | Errno::EXIST) => {
                    child = Some(name.to_owned());
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        drop(entries);
        if let Some(name) = child {
            cur = open_dir(&cur, &name)?;
            names.push(name);
            continue;
        }
        // `cur` is empty: go back up and remove it, or stop at the top.
        let Some(name) = names.pop() else {
            return Ok(());
        };
        let parent = open_dir(&cur, c"..")?;
        rustix::fs::unlinkat(&parent, &name, AtFlags::REMOVEDIR)?;
        cur = parent;
    }
}

/// True when the directory read through `dir` holds no entry: one rewind and one or two
/// reads of an already open handle.
pub(crate) fn is_empty(dir: &mut Dir) -> io::Result<bool> {
    dir.rewind();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What a job's files take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Bytes: for each file the larger of its length and its allocated blocks, so a
    /// sparse file counts at its full length.
    pub(crate) bytes: u64,
    /// Files, directories and links.
    pub(crate) entries: u64,
}

/// Adds up what is below `dir`, never following symlinks, stopping as soon as either
/// total passes its limit. A tree that cannot be measured (nested deeper than
/// [`MAX_DEPTH`], a path the host cannot open) is an error, so it is never taken for a
/// small one; entries that vanish during the walk are skipped.
pub(crate) fn usage(dir: &Path, max_bytes: u64, max_entries: u64) -> io::Result<Usage> {
    let mut total = Usage::default();
    let mut stack = vec![(dir.to_owned(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && depth > 0 => continue,
            Err(e) => return Err(e),
        };
        for entry in rd {
            let entry = entry?;
            let md = match entry.metadata() {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            total.entries += 1;
            if md.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    return Err(io::Error::other(format!(
                        "directories nested deeper than {MAX_DEPTH} levels"
                    )));
                }
                stack.push((entry.path(), depth + 1));
            } else {
                total.bytes += md.len().max(md.blocks() * 512);
            }
            if total.bytes > max_bytes || total.entries > max_entries {
                return Ok(total);
            }
        }
    }
    Ok(total)
}

/// The regular files below `dir` (as paths relative to it) for which `matches` is true,
/// never following a symlink, visiting at most `max_entries` entries and [`MAX_DEPTH`]
/// levels; what lies beyond is not looked at.
pub(crate) fn files_matching(
    dir: &Path,
    max_entries: u64,
    matches: impl Fn(&Path) -> bool,
) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut seen = 0u64;
    let mut stack = vec![(PathBuf::new(), 0usize)];
    while let Some((rel, depth)) = stack.pop() {
        let Ok(rd) = fs::read_dir(dir.join(&rel)) else {
            continue;
        };
        for entry in rd.flatten() {
            seen += 1;
            if seen > max_entries {
                return Ok(found);
            }
            let Ok(ft) = entry.file_type() else {
                continue;
            };
            let path = rel.join(entry.file_name());
            if ft.is_dir() && depth + 1 < MAX_DEPTH {
                stack.push((path, depth + 1));
            } else if ft.is_file() && matches(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `depth` directories with long names below `top`, made with directory
    /// handles since the path is far longer than PATH_MAX.
    fn deep_chain(top: &Path, depth: usize) {
        let name = CString::new("d".repeat(200)).unwrap();
        let mut cur =
            rustix::fs::open(top, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        for _ in 0..depth {
            rustix::fs::mkdirat(&cur, &name, Mode::from_raw_mode(0o755)).unwrap();
            cur = open_dir(&cur, &name).unwrap();
        }
        let f = rustix::fs::openat(
            &cur,
            c"f",
            OFlags::CREATE | OFlags::WRONLY,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        drop(f);
    }

    #[test]
    fn removes_trees_deeper_than_path_max_and_symlink_loops() {
        let dir = tempfile::tempdir().unwrap();
        deep_chain(dir.path(), 3000);
        std::os::unix::fs::symlink(".", dir.path().join("loop")).unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("root")).unwrap();
        fs::write(dir.path().join("plain"), "x").unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), "k").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        remove_contents(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(
            outside.path().join("keep").exists(),
            "links are not followed"
        );
    }

    #[test]
    fn usage_refuses_what_it_cannot_measure_and_stops_at_limits() {
        let dir = tempfile::tempdir().unwrap();
        deep_chain(dir.path(), 40);
        assert!(
            usage(dir.path(), u64::MAX, u64::MAX).is_err(),
            "past PATH_MAX"
        );
        remove_contents(dir.path()).unwrap();
        for i in 0..50 {
            fs::write(dir.path().join(format!("f{i}")), [0u8; 100]).unwrap();
        }
        let u = usage(dir.path(), u64::MAX, 10).unwrap();
        assert_eq!(u.entries, 11, "stops just past the entry limit");
        let u = usage(dir.path(), u64::MAX, u64::MAX).unwrap();
        assert_eq!(u.entries, 50);
        assert!(u.bytes >= 5000);
    }

    #[test]
    fn files_matching_does_not_follow_links() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("a")).unwrap();
        fs::write(dir.path().join("a/x.out"), "1").unwrap();
        std::os::unix::fs::symlink(".", dir.path().join("a/self")).unwrap();
        std::os::unix::fs::symlink("..", dir.path().join("a/up")).unwrap();
        let found = files_matching(dir.path(), 1000, |p| {
            p.extension().is_some_and(|e| e == "out")
        })
        .unwrap();
        assert_eq!(found, [PathBuf::from("a/x.out")]);
    }
}
