//! The data directory of `msgr serve`: made owner-only if missing, locked
//! so that one server at a time uses it (the lock file holds that
//! server's process id; the operating system releases the lock when the
//! process ends, even by kill -9), the database opened and the
//! self-signed certificate made or loaded. A start that fails here
//! removes the folders it made, and never one that existed before.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::cli::error::AppResult;
use crate::cli::failure::Failure;
use crate::files;
use crate::server::metrics::BatchSizes;
use crate::server::sqlite::SqliteStore;
use crate::server::tls::{self, ServerTls};

/// File name of the lock in the data directory.
pub const LOCK_FILE: &str = "lock";

/// A data directory in use by this process.
pub struct DataDir {
    /// The database.
    pub store: SqliteStore,
    /// The operator's TLS material, else the self-signed certificate.
    pub tls: ServerTls,
    /// Held for as long as the server runs: closing the file, or the end
    /// of the process, unlocks it.
    pub lock: File,
}

/// The data directory: `given` (`--data-dir`, `MSGR_DATA_DIR`), else the
/// platform's.
pub fn chosen(given: Option<&Path>) -> AppResult<PathBuf> {
    match given {
        Some(dir) => Ok(dir.to_owned()),
        None => Ok(directories::ProjectDirs::from("", "", "msgr")
            .map(|dirs| dirs.data_dir().to_owned())
            .ok_or(Failure::NoDataDir)?),
    }
}

/// Make, lock and open the data directory `given` (else the platform's);
/// `operator_tls` is the TLS material of `--cert` and `--key`, if given;
/// the database records the size of its group commits in `batches`.
pub fn open(
    given: Option<&Path>,
    operator_tls: Option<ServerTls>,
    batches: BatchSizes,
) -> AppResult<DataDir> {
    let dir = chosen(given)?;
    let made =
        files::create_missing_private_dirs(&dir).map_err(|error| Failure::CreateDataDir {
            dir: dir.clone(),
            source: error.source,
        })?;
    let lock = match lock(&dir) {
        Ok(lock) => lock,
        Err(error) => {
            // Not locked by this process, so perhaps in use by another:
            // remove only what is still empty.
            for folder in made.iter().rev() {
                let _ = fs::remove_dir(folder);
            }
            return Err(error);
        }
    };
    // Dropped before the lock (declared after it): the folders go while
    // this process still holds them.
    let made = Made(made);
    restrict(&dir)?;
    let store =
        SqliteStore::open_recording(&dir, Some(batches)).map_err(|source| Failure::OpenStore {
            dir: dir.clone(),
            source,
        })?;
    let tls = match operator_tls {
        Some(tls) => tls,
        None => tls::self_signed(&dir).map_err(|source| Failure::SelfSignedTls {
            dir: dir.clone(),
            source,
        })?,
    };
    made.keep();
    Ok(DataDir { store, tls, lock })
}

/// Take the lock of `dir` and write this process's id into it, or say
/// which process holds it. `msgr admin migrate` takes it too, so that no
/// server changes the directory while it is copied.
pub fn lock(dir: &Path) -> AppResult<File> {
    let path = dir.join(LOCK_FILE);
    let cannot = |source| Failure::LockDataDir {
        lock: path.clone(),
        source,
    };
    let Some(mut file) = files::try_lock_exclusive(&path).map_err(|error| cannot(error.source))?
    else {
        let pid = fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse().ok());
        return Err(Failure::DataDirInUse {
            dir: dir.to_owned(),
            lock: path,
            pid,
        }
        .into());
    };
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(cannot)?;
    Ok(file)
}

/// The data directory holds the TLS key and everyone's queued mail: if
/// group or others may enter it (it existed already), make it 0700.
fn restrict(dir: &Path) -> AppResult<()> {
    let was =
        files::restrict(dir, files::FOLDER_MODE).map_err(|error| Failure::RestrictDataDir {
            dir: dir.to_owned(),
            source: error.source,
        })?;
    if let Some(mode) = was {
        warn!(
            dir = %dir.display(),
            was = format!("{mode:o}"),
            "the data directory was open to other users; restricted it to its owner (0700)"
        );
    }
    Ok(())
}

/// The folders this start made, outermost first, removed when dropped
/// unless the start succeeded: the data directory with all in it, then
/// each parent it needed, if still empty.
struct Made(Vec<PathBuf>);

impl Made {
    /// The start succeeded: keep everything.
    fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        let Some((data_dir, parents)) = self.0.split_last() else {
            return;
        };
        if let Err(error) = fs::remove_dir_all(data_dir) {
            warn!(dir = %data_dir.display(), %error, "cannot remove the data directory this failed start made");
        }
        for parent in parents.iter().rev() {
            let _ = fs::remove_dir(parent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_start_removes_what_it_made_and_nothing_else() {
        let root = tempfile::tempdir().unwrap();
        let data_dir = root.path().join("a/b/data");
        let made = files::create_missing_private_dirs(&data_dir).unwrap();
        fs::write(data_dir.join("msgr.db"), b"").unwrap();
        // Something else appeared in a parent meanwhile: that parent stays.
        fs::write(root.path().join("a/other"), b"").unwrap();
        drop(Made(made));
        assert!(!root.path().join("a/b").exists());
        assert!(root.path().join("a/other").exists());

        let made = files::create_missing_private_dirs(&data_dir).unwrap();
        Made(made).keep();
        assert!(data_dir.is_dir());
    }

    #[test]
    fn the_lock_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let pid = std::process::id();
        let text = fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{pid}\n"));
        let error = lock(dir.path()).unwrap_err();
        assert!(
            error.message().contains(&format!(" (process {pid}), ")),
            "{error}"
        );
        drop(held);
        assert!(lock(dir.path()).is_ok());
    }
}
