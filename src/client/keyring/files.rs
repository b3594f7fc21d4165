//! File primitives for the keyring: atomic writes (temp file, fsync,
//! rename, fsync of the folder), private folders, exclusive locks and the
//! permission check on secret files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::KeyringError;

/// Permission bits for secret files: owner read/write only.
pub const SECRET_MODE: u32 = 0o600;

/// Permission bits for keyring folders: owner only.
pub const FOLDER_MODE: u32 = 0o700;

/// Create `dir` (and parents) with owner-only permissions if missing.
pub fn create_private_dir(dir: &Path) -> Result<(), KeyringError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(FOLDER_MODE)
        .create(dir)
        .map_err(|e| KeyringError::io(dir, e))
}

/// Replace `path` with `contents` atomically: readers see the old file or
/// the new one, never a mix, and the new one survives a crash once this
/// returns.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), KeyringError> {
    let dir = path.parent().expect("keyring files live in a folder");
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(fs::Permissions::from_mode(SECRET_MODE))
        .tempfile_in(dir)
        .map_err(|e| KeyringError::io(dir, e))?;
    temp.write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| KeyringError::io(temp.path(), e))?;
    temp.persist(path)
        .map_err(|e| KeyringError::io(path, e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| KeyringError::io(dir, e))
}

/// Append `lines` (each ending in a newline) to `path`, created with mode
/// 0600 if missing, and make them durable with one fsync. A line left
/// incomplete by a crash is closed first, so it can never merge with the
/// next; readers ignore such a fragment. Cheaper than [`write_atomic`] for a
/// file that only grows: one fsync, no rewrite.
pub fn append_lines(path: &Path, lines: &[u8]) -> Result<(), KeyringError> {
    use std::io::{Read, Seek, SeekFrom};
    let created = !path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(SECRET_MODE)
        .open(path)
        .map_err(|e| KeyringError::io(path, e))?;
    let io = |e| KeyringError::io(path, e);
    let mut last = [b'\n'];
    if file.seek(SeekFrom::End(0)).map_err(io)? > 0 {
        file.seek(SeekFrom::End(-1)).map_err(io)?;
        file.read_exact(&mut last).map_err(io)?;
    }
    let mut data = Vec::with_capacity(lines.len() + 1);
    if last[0] != b'\n' {
        data.push(b'\n');
    }
    data.extend_from_slice(lines);
    file.write_all(&data)
        .and_then(|()| file.sync_data())
        .map_err(io)?;
    if created {
        let dir = path.parent().expect("keyring files live in a folder");
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| KeyringError::io(dir, e))?;
    }
    Ok(())
}

/// Read a file, or `None` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, KeyringError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KeyringError::io(path, e)),
    }
}

/// Refuse a secret file that group or others may read, as ssh does.
pub fn check_private(path: &Path) -> Result<(), KeyringError> {
    let mode = fs::metadata(path)
        .map_err(|e| KeyringError::io(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyringError::TooOpen {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

/// Take an exclusive lock on `path` (created if missing), blocking until
/// other msgr processes release it. The lock lasts as long as the file.
pub fn lock_exclusive(path: &Path) -> Result<File, KeyringError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(SECRET_MODE)
        .open(path)
        .map_err(|e| KeyringError::io(path, e))?;
    file.lock().map_err(|e| KeyringError::io(path, e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_contents_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp files left"
        );
    }

    #[test]
    fn appended_lines_survive_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        append_lines(&path, b"one\n").unwrap();
        // A crash mid-append leaves a fragment without its newline.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"tw")
            .unwrap();
        append_lines(&path, b"three\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one\ntw\nthree\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn open_secret_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        fs::write(&path, b"x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            check_private(&path),
            Err(KeyringError::TooOpen { mode: 0o644, .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_private(&path).is_ok());
    }

    #[test]
    fn private_dirs_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_private_dir(&nested).unwrap();
        assert_eq!(
            fs::metadata(&nested).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
