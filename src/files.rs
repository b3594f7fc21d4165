//! Files only their owner may touch — the one home of that policy, for the
//! client's keyring and saved messages and the server's data directory:
//! folders 0700 and secret files 0600, the check that refuses a secret
//! file others may read (as ssh does), tightening what an older setup left
//! open, atomic replacement (temporary file, fsync, rename, fsync of the
//! folder), durable appends, exclusive locks, and PEM certificate chains.
//! It depends on nothing else in the crate; every error names its path.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};
use thiserror::Error;

/// Permission bits for secret files: owner read/write only.
pub const SECRET_MODE: u32 = 0o600;

/// How the names of files still being written begin; a reader listing a
/// folder skips them.
pub const TEMPORARY_PREFIX: &str = ".tmp-";

/// Permission bits for private folders: owner only.
pub const FOLDER_MODE: u32 = 0o700;

/// The bits that give group or others any access.
const OTHERS: u32 = 0o077;

/// A file operation that failed, and on which path.
#[derive(Debug, Error)]
#[error("cannot access {}: {source}", path.display())]
pub struct FileError {
    /// The file or folder concerned.
    pub path: PathBuf,
    /// The underlying error.
    pub source: io::Error,
}

impl FileError {
    fn at(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self {
            path: path.to_owned(),
            source,
        }
    }
}

/// Create `dir` (and parents) with owner-only permissions if missing.
pub fn create_private_dir(dir: &Path) -> Result<(), FileError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(FOLDER_MODE)
        .create(dir)
        .map_err(FileError::at(dir))
}

/// Create `dir` and its missing parents with owner-only permissions, as
/// [`create_private_dir`] does, and return the folders this call made,
/// outermost first: empty if `dir` existed, so that a caller can remove
/// exactly what it made and never a folder that was there before.
pub fn create_missing_private_dirs(dir: &Path) -> Result<Vec<PathBuf>, FileError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|folder| !folder.as_os_str().is_empty() && !folder.exists())
        .collect();
    let mut made = Vec::new();
    for folder in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(FOLDER_MODE).create(folder) {
            Ok(()) => made.push(folder.to_owned()),
            // Made meanwhile by another process: not ours to remove.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && folder.is_dir() => {}
            Err(error) => return Err(FileError::at(folder)(error)),
        }
    }
    if !dir.is_dir() {
        return Err(FileError::at(dir)(io::ErrorKind::NotADirectory.into()));
    }
    Ok(made)
}

/// Create the secret file `path` (mode 0600) if it does not exist.
pub fn create_secret_file(path: &Path) -> Result<(), FileError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(SECRET_MODE)
        .open(path)
        .map(drop)
        .map_err(FileError::at(path))
}

/// Create the secret file `path` (mode 0600), empty; fails if anything is
/// there already (a link is never followed).
pub fn create_new_secret_file(path: &Path) -> Result<(), FileError> {
    OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(SECRET_MODE)
        .open(path)
        .map(drop)
        .map_err(FileError::at(path))
}

/// The permission bits of `path` if group or others may access it.
pub fn open_to_others(path: &Path) -> Result<Option<u32>, FileError> {
    let mode = fs::metadata(path)
        .map_err(FileError::at(path))?
        .permissions()
        .mode()
        & 0o777;
    Ok((mode & OTHERS != 0).then_some(mode))
}

/// If group or others may access `path`, set its mode to `mode` (one of
/// [`SECRET_MODE`], [`FOLDER_MODE`]) and return the bits it had, so the
/// caller can say so. A missing file is left missing.
pub fn restrict(path: &Path, mode: u32) -> Result<Option<u32>, FileError> {
    let was = match open_to_others(path) {
        Ok(was) => was,
        Err(error) if error.source.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    if was.is_some() {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(FileError::at(path))?;
    }
    Ok(was)
}

/// Replace `path` with `contents` atomically and with mode 0600: readers
/// see the old file or the new one, never a mix, and the new one survives
/// a crash once this returns.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    replace(path, contents, true)
}

/// [`write_atomic`] without the fsyncs, for a file whose loss costs
/// nothing: readers still see the old file or the whole new one, but a
/// crash soon after may leave the old one, or an empty one.
pub fn write_atomic_unsynced(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    replace(path, contents, false)
}

/// Replace `path` through a temporary file in its folder, made `durable`
/// by fsyncs or not.
fn replace(path: &Path, contents: &[u8], durable: bool) -> Result<(), FileError> {
    let dir = folder_of(path);
    let temp = temporary(dir, contents, durable)?;
    temp.persist(path)
        .map_err(|error| FileError::at(path)(error.error))?;
    if durable {
        sync_folder(dir)?;
    }
    Ok(())
}

/// A temporary file (mode 0600) in `dir` holding `contents`, synced to
/// disk if `durable`; deleted when dropped unless persisted.
fn temporary(
    dir: &Path,
    contents: &[u8],
    durable: bool,
) -> Result<tempfile::NamedTempFile, FileError> {
    let mut temp = tempfile::Builder::new()
        .prefix(TEMPORARY_PREFIX)
        .permissions(fs::Permissions::from_mode(SECRET_MODE))
        .tempfile_in(dir)
        .map_err(FileError::at(dir))?;
    temp.write_all(contents)
        .and_then(|()| match durable {
            true => temp.as_file().sync_all(),
            false => Ok(()),
        })
        .map_err(FileError::at(temp.path()))?;
    Ok(temp)
}

/// Rename `from` to `to` (replacing it) in the same folder, durably.
pub fn rename_durably(from: &Path, to: &Path) -> Result<(), FileError> {
    fs::rename(from, to).map_err(FileError::at(to))?;
    sync_folder(folder_of(to))
}

/// Write `contents` to `path` (mode 0600) only if nothing is there yet —
/// no file, and no link, which is never followed: whole and durable, or
/// not at all. Returns whether it did (`false`: the name is taken).
pub fn write_new(path: &Path, contents: &[u8]) -> Result<bool, FileError> {
    let dir = folder_of(path);
    let temp = temporary(dir, contents, true)?;
    // link(2) creates the name only if it is free, atomically.
    match fs::hard_link(temp.path(), path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(error) => return Err(FileError::at(path)(error)),
    }
    sync_folder(dir)?;
    Ok(true)
}

/// Write `body` to a file of its own in `dir`, durably: `NAME`, or else
/// `NAME.2`, `NAME.3`, … when that name is taken by other contents or by
/// anything but a file (a link is never followed). A file with the same
/// contents (left by a read that crashed before acknowledging) is used
/// again. So one file never stops the writing of the others.
pub fn write_unique(dir: &Path, name: &str, body: &[u8]) -> Result<PathBuf, FileError> {
    for n in 1u32.. {
        let path = match n {
            1 => dir.join(name),
            n => dir.join(format!("{name}.{n}")),
        };
        let occupant = match std::fs::symlink_metadata(&path) {
            Ok(occupant) => occupant,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if write_new(&path, body)? {
                    return Ok(path);
                }
                continue;
            }
            Err(source) => return Err(FileError { path, source }),
        };
        if occupant.is_file() && occupant.len() == body.len() as u64 {
            let existing = std::fs::read(&path).map_err(|source| FileError {
                path: path.clone(),
                source,
            })?;
            if existing == body {
                return Ok(path);
            }
        }
    }
    unreachable!("some number names a free file")
}

/// Append `lines` (each ending in a newline) to `path`, created with mode
/// 0600 if missing, and make them durable with one fsync. A line left
/// incomplete by a crash is closed first, so it can never merge with the
/// next; readers ignore such a fragment. Cheaper than [`write_atomic`] for a
/// file that only grows: one fsync, no rewrite.
pub fn append_lines(path: &Path, lines: &[u8]) -> Result<(), FileError> {
    let created = !path.exists();
    let io = FileError::at(path);
    let append = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(SECRET_MODE)
            .open(path)?;
        let mut last = [b'\n'];
        if file.seek(SeekFrom::End(0))? > 0 {
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
        }
        let mut data = Vec::with_capacity(lines.len() + 1);
        if last[0] != b'\n' {
            data.push(b'\n');
        }
        data.extend_from_slice(lines);
        file.write_all(&data)?;
        file.sync_data()
    };
    append().map_err(io)?;
    if created {
        sync_folder(folder_of(path))?;
    }
    Ok(())
}

/// Read a file, or `None` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FileError::at(path)(e)),
    }
}

/// Take an exclusive lock on `path` (created 0600 if missing), blocking
/// until other processes release it. The lock lasts as long as the file.
pub fn lock_exclusive(path: &Path) -> Result<File, FileError> {
    let file = lock_file(path)?;
    file.lock().map_err(FileError::at(path))?;
    Ok(file)
}

/// Take an exclusive lock on `path` (created 0600 if missing) if no other
/// process holds it, without waiting: `None` if one does. The lock lasts
/// as long as the file, and the operating system releases it when the
/// process ends, however it ends.
pub fn try_lock_exclusive(path: &Path) -> Result<Option<File>, FileError> {
    let file = lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(error)) => Err(FileError::at(path)(error)),
    }
}

/// The file `path` opened for locking, created 0600 if missing.
fn lock_file(path: &Path) -> Result<File, FileError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(SECRET_MODE)
        .open(path)
        .map_err(FileError::at(path))
}

/// The certificates in the PEM file `path`, in order; `Err` says in words
/// what is wrong with the file.
pub fn certificate_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|error| pem_reason(error, "certificate"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_reason(error, "certificate"))?;
    if chain.is_empty() {
        return Err(pem_reason(pem::Error::NoItemsFound, "certificate"));
    }
    Ok(chain)
}

/// What is wrong with a PEM file meant to hold a `what`, in words.
pub fn pem_reason(error: pem::Error, what: &str) -> String {
    match error {
        pem::Error::NoItemsFound => format!("it holds no PEM {what}"),
        pem::Error::Io(error) => error.to_string(),
        other => format!("it is not valid PEM ({other})"),
    }
}

/// The folder `path` is in.
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Make the renames, creations and deletions in `dir` durable.
pub fn sync_folder(dir: &Path) -> Result<(), FileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FileError::at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn atomic_write_replaces_contents_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), SECRET_MODE);
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
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"tw")
            .unwrap();
        append_lines(&path, b"three\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one\ntw\nthree\n");
        assert_eq!(mode(&path), SECRET_MODE);
    }

    #[test]
    fn files_open_to_others_are_found_and_restricted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        fs::write(&path, b"x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(open_to_others(&path).unwrap(), Some(0o644));
        assert_eq!(restrict(&path, SECRET_MODE).unwrap(), Some(0o644));
        assert_eq!(mode(&path), SECRET_MODE);
        assert_eq!(open_to_others(&path).unwrap(), None);
        assert_eq!(restrict(&path, SECRET_MODE).unwrap(), None);
        assert_eq!(
            restrict(&dir.path().join("missing"), SECRET_MODE).unwrap(),
            None
        );
    }

    #[test]
    fn private_dirs_and_secret_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_private_dir(&nested).unwrap();
        assert_eq!(mode(&nested), FOLDER_MODE);
        let file = nested.join("db");
        create_secret_file(&file).unwrap();
        assert_eq!(mode(&file), SECRET_MODE);
    }

    #[test]
    fn missing_dirs_are_made_private_and_listed_outermost_first() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b/c");
        let made = create_missing_private_dirs(&nested).unwrap();
        assert_eq!(
            made,
            [dir.path().join("a"), dir.path().join("a/b"), nested.clone()]
        );
        assert_eq!(mode(&dir.path().join("a")), FOLDER_MODE);
        assert_eq!(mode(&nested), FOLDER_MODE);
        assert!(create_missing_private_dirs(&nested).unwrap().is_empty());
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let error = create_missing_private_dirs(&file).unwrap_err();
        assert_eq!(error.path, file);
    }

    #[test]
    fn a_held_lock_is_refused_without_waiting_and_released_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = try_lock_exclusive(&path)
            .unwrap()
            .expect("a free lock is taken");
        assert_eq!(mode(&path), SECRET_MODE);
        assert!(try_lock_exclusive(&path).unwrap().is_none());
        drop(held);
        assert!(try_lock_exclusive(&path).unwrap().is_some());
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing/file");
        let error = write_atomic(&missing, b"x").unwrap_err();
        assert_eq!(error.path, dir.path().join("missing"));
        assert!(error.to_string().starts_with("cannot access "), "{error}");
    }

    #[test]
    fn certificate_chains_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "no PEM here\n").unwrap();
        assert_eq!(
            certificate_chain(&empty).unwrap_err(),
            "it holds no PEM certificate"
        );
        let missing = certificate_chain(&dir.path().join("missing.pem")).unwrap_err();
        assert!(missing.contains("No such file"), "{missing}");
    }
}
