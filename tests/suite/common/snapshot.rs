//! Snapshot files: text a user reads, pinned in `tests/suite/snapshots/`.
//! With `MSGR_UPDATE_SNAPSHOTS=1` they are rewritten instead of compared;
//! review the diff before committing it.

use std::path::PathBuf;

/// Compare `actual` with the snapshot `relative` (to
/// `tests/suite/snapshots/`), or rewrite it in update mode. The
/// difference, if any, in words for a failure message.
pub fn differs(relative: &str, actual: &str) -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/suite/snapshots")
        .join(relative);
    if std::env::var_os("MSGR_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return None;
    }
    let pinned = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with MSGR_UPDATE_SNAPSHOTS=1", path.display()));
    if pinned == actual {
        return None;
    }
    let (now, then): (Vec<&str>, Vec<&str>) = (actual.lines().collect(), pinned.lines().collect());
    let line = (0..now.len().max(then.len()))
        .find(|&i| now.get(i) != then.get(i))
        .unwrap_or(0);
    Some(format!(
        "{} differs at line {}:\n  now:      {:?}\n  snapshot: {:?}\n\
         (MSGR_UPDATE_SNAPSHOTS=1 rewrites it if the change is meant)",
        path.display(),
        line + 1,
        now.get(line),
        then.get(line)
    ))
}
