//! Listing the files at one depth of the layout (`modules/<aa>/<file>`, ...).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::error::{CacheError, io_err, unless_missing};

/// Regular files exactly `depth` directory levels below `dir`, each directory's in the order
/// it lists them.
///
/// A missing `dir` is empty, and so is a directory below it that vanishes during the walk;
/// a directory that cannot be read (or a `dir` that is not one) is an error. Symbolic links
/// below `dir` are neither followed nor listed, files above the last level are not part of
/// the layout and are passed over, and so is an entry that cannot be read.
pub(super) fn files_below(dir: &Path, depth: usize) -> Result<Vec<PathBuf>, CacheError> {
    // The walk would list a `dir` that is not a directory as a lone file: reading it as a
    // directory is what fails, as it does for the directories below it.
    if unless_missing(fs::read_dir(dir), dir)?.is_none() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in WalkDir::new(dir).min_depth(depth).max_depth(depth) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                // Without a path, the next entry of a listing could not be read; without an
                // i/o error, a link loop, which a walk that follows no links never meets.
                let path = e.path().map(Path::to_owned);
                match (path, e.into_io_error()) {
                    (Some(path), Some(source)) if source.kind() != io::ErrorKind::NotFound => {
                        return Err(io_err(&path)(source));
                    }
                    _ => continue,
                }
            }
        };
        if entry.file_type().is_file() {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn only_regular_files_at_the_depth_asked() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("modules");
        fs::create_dir_all(root.join("aa/deeper")).unwrap();
        fs::create_dir_all(root.join("bb")).unwrap();
        fs::write(root.join("stray"), b"").unwrap();
        fs::write(root.join("aa/one.wasm"), b"").unwrap();
        fs::write(root.join("aa/.tmp-x"), b"").unwrap();
        fs::write(root.join("aa/deeper/too-deep"), b"").unwrap();
        fs::write(root.join("bb/two.wasm"), b"").unwrap();
        symlink(root.join("aa/one.wasm"), root.join("bb/link.wasm")).unwrap();
        symlink(root.join("aa"), root.join("cc")).unwrap();
        let mut found = files_below(&root, 2).unwrap();
        found.sort();
        assert_eq!(
            found,
            [
                root.join("aa/.tmp-x"),
                root.join("aa/one.wasm"),
                root.join("bb/two.wasm")
            ]
        );
    }

    #[test]
    fn a_missing_root_is_empty_and_a_file_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(files_below(&dir.path().join("none"), 2).unwrap().is_empty());
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(matches!(
            files_below(&file, 2),
            Err(CacheError::Io { path, .. }) if path == file
        ));
    }

    #[test]
    fn a_root_that_is_a_link_to_a_directory_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("real/aa")).unwrap();
        fs::write(dir.path().join("real/aa/one.wasm"), b"").unwrap();
        symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        let link = dir.path().join("link");
        assert_eq!(files_below(&link, 2).unwrap(), [link.join("aa/one.wasm")]);
    }
}
