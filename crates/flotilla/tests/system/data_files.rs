//! RELIABILITY.md S11: the data directory holds identity's signing key and password hashes and
//! the service secret, so it is 0700 and its files 0600 whatever the umask; a directory or file
//! left looser (by an older version, by hand) is tightened at start, with a log line.

use flotilla::cli::Common;
use flotilla::host::{Host, Mode};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::support::TEST_PRODUCTS;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Log output captured for this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Builds and stops a `run` host on `data` (a host that built has opened every database).
async fn start_and_stop(data: &Path) {
    let config = figment::Figment::from(figment::providers::Serialized::defaults(
        serde_json::json!({ "catalog": {"seed_products": TEST_PRODUCTS} }),
    ));
    let common = Common {
        port: Some(0),
        data_dir: Some(data.to_path_buf()),
        ..Common::default()
    };
    let (config, settings) = flotilla::settings(config, &common).expect("settings");
    let host = Host::build(config, settings, Mode::Run)
        .await
        .expect("host builds");
    let shutdown = host.shutdown_token();
    let running = tokio::spawn(host.run());
    shutdown.cancel();
    running.await.expect("joined").expect("stopped cleanly");
}

#[tokio::test]
async fn the_data_directory_and_its_files_are_private_and_loose_ones_are_tightened() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    start_and_stop(&data).await;
    assert_eq!(mode(&data), 0o700);
    let identity = data.join("identity.db");
    for file in [
        &identity,
        &data.join("service-secret"),
        &data.join("catalog.db"),
    ] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }

    // As an older version left them: everything world-readable.
    chmod(&data, 0o755);
    for entry in std::fs::read_dir(&data).expect("list") {
        let path = entry.expect("entry").path();
        // SQLite removes a database's -wal and -shm files when its last connection closes,
        // which the stopped host's pool may still be doing: a file gone is not loose.
        match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            result => result.expect("chmod"),
        }
    }
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    {
        let _guard = tracing::subscriber::set_default(subscriber);
        start_and_stop(&data).await;
    }
    assert_eq!(mode(&data), 0o700);
    for entry in std::fs::read_dir(&data).expect("list") {
        let path = entry.expect("entry").path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    let log = String::from_utf8(log.0.lock().expect("log").clone()).expect("utf-8");
    for tightened in [&data, &identity, &data.join("service-secret")] {
        assert!(
            log.lines()
                .any(|l| l.contains("tightened")
                    && l.contains(&format!("path={}", tightened.display()))),
            "no log line for {}:\n{log}",
            tightened.display()
        );
    }
}
