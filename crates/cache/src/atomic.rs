//! Whole-file writes that readers never see half done.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// How the name of a write's temp file starts; a leftover one is an interrupted write.
const TEMP_PREFIX: &str = ".tmp-";

/// Writes `bytes` to `path` through a temp file in the same directory: write, fsync,
/// rename, then fsync the directory so the rename survives a crash.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache paths always have a parent");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Directory fsync is best effort: some filesystems refuse it and the data is safe anyway.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// True when `path` is the temp file of a write in progress, or of an interrupted one.
pub(crate) fn is_temp(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX))
}
