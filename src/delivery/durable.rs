//! Writing a file at the end of delivery so that, once written, it survives
//! a crash or a power loss: the contents go to a temporary file beside the
//! target, which is flushed to disk, renamed into place, and the directory
//! flushed too, so a reader never sees half a file and the name never points
//! at nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` durably; with `private`, readable by the
/// owner only (mode 0600). Blocking: run it on a blocking thread.
pub fn write(path: &Path, contents: &[u8], private: bool) -> io::Result<()> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let partial = partial_of(path);
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        options.mode(0o600);
    }
    let written = (|| {
        let mut file = options.open(&partial)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&partial, path)?;
        // The rename itself is durable only once the directory is.
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&partial);
    }
    written
}

/// The temporary name a file is written under first.
pub fn partial_of(path: &Path) -> PathBuf {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    PathBuf::from(partial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_into_place_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/file.bin");
        write(&path, b"first", false).unwrap();
        write(&path, b"second", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert!(!partial_of(&path).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let private = dir.path().join("private");
            write(&private, b"x", true).unwrap();
            assert_eq!(fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_failed_write_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails.
        let target = dir.path().join("taken");
        fs::create_dir_all(target.join("inside")).unwrap();
        assert!(write(&target, b"x", false).is_err());
        assert!(!partial_of(&target).exists());
    }
}
