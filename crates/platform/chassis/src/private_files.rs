//! Files only this user may read: the data directory holds identity's Ed25519 signing key and
//! password hashes (in `identity.db`) and the cluster's service secret, and with the key anyone
//! on the machine could forge an admin token. Directories are made 0700 and files 0600 whatever
//! the umask, and ones left looser by an older version are tightened at start, with a log line
//! (RELIABILITY.md S11). On other platforms than Unix these are no-ops.

use std::io;
use std::path::Path;

/// Mode of a private directory: the owner may list, enter and write it.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;
/// Mode of a private file: the owner may read and write it.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents, each created one 0700, and tightens `dir` itself to
/// 0700 when it exists with a looser mode. Returns whether an existing `dir` was tightened.
pub fn private_dir(dir: &Path) -> io::Result<bool> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)?;
    tighten(dir, true)
}

/// Creates `path` empty with mode 0600 unless it exists; an existing file is tightened to 0600
/// instead. Returns whether an existing file was tightened.
pub fn private_file(path: &Path) -> io::Result<bool> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    match options.open(path) {
        Ok(_) => Ok(false),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => tighten(path, false),
        Err(err) => Err(err),
    }
}

/// Tightens `path` to 0600 if it exists with a looser mode (a missing file is fine: SQLite's
/// side files come and go). Returns whether it was tightened.
pub fn tighten_file(path: &Path) -> io::Result<bool> {
    match tighten(path, false) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        other => other,
    }
}

#[cfg(unix)]
fn tighten(path: &Path, dir: bool) -> io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    let wanted = if dir { DIR_MODE } else { FILE_MODE };
    // Only group and other bits are taken away; the owner's own bits are left as they are.
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    let tightened = (mode & 0o700) | wanted;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(tightened))?;
    tracing::warn!(
        path = %path.display(),
        from = format_args!("{mode:o}"),
        to = format_args!("{tightened:o}"),
        "tightened the mode of a data file others could read"
    );
    Ok(true)
}

#[cfg(not(unix))]
fn tighten(path: &Path, _dir: bool) -> io::Result<bool> {
    std::fs::metadata(path).map(|_| false)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn new_directories_and_files_are_private() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("a/b");
        assert!(!private_dir(&dir).expect("created"));
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("key");
        assert!(!private_file(&file).expect("created"));
        assert_eq!(mode(&file), 0o600);
        assert!(!tighten_file(&dir.join("absent")).expect("nothing to do"));
    }

    #[test]
    fn existing_loose_ones_are_tightened_and_reported() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let file = dir.join("identity.db");
        std::fs::write(&file, b"").expect("file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(private_dir(&dir).expect("tightened"));
        assert_eq!(mode(&dir), 0o700);
        assert!(private_file(&file).expect("tightened"));
        assert_eq!(mode(&file), 0o600);
        assert!(!private_file(&file).expect("already private"));
        assert!(!private_dir(&dir).expect("already private"));
    }

    #[tokio::test]
    async fn sqlite_databases_and_their_side_files_are_private() {
        use crate::db::{Db, PoolSettings};
        let root = tempfile::tempdir().expect("temp dir");
        let side = |path: &Path, suffix: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::path::PathBuf::from(name)
        };
        let write = |db: Db| async move {
            sqlx::raw_sql("CREATE TABLE IF NOT EXISTS t (x BIGINT); INSERT INTO t VALUES (1)")
                .execute(db.pool())
                .await
                .expect("write");
            db
        };
        // A new database.
        let fresh = root.path().join("fresh.db");
        let db = write(
            Db::open_sqlite(&fresh, &PoolSettings::default())
                .await
                .expect("open"),
        )
        .await;
        for path in [fresh.clone(), side(&fresh, "-wal"), side(&fresh, "-shm")] {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
        db.close().await;
        // One an older version left world-readable, with its WAL.
        let old = root.path().join("old.db");
        let db = write(
            Db::open_sqlite(&old, &PoolSettings::default())
                .await
                .expect("open"),
        )
        .await;
        for path in [old.clone(), side(&old, "-wal"), side(&old, "-shm")] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        drop(db);
        let db = write(
            Db::open_sqlite(&old, &PoolSettings::default())
                .await
                .expect("reopen"),
        )
        .await;
        for path in [old.clone(), side(&old, "-wal"), side(&old, "-shm")] {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
        db.close().await;
    }
}
