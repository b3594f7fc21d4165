//! `msgr serve` starting up, as an operator meets it: `--bind` with a
//! host name, one server per data directory (a lock that a kill -9
//! releases), and failed starts that leave nothing behind.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use crate::common::{Server, World, msgr_bare};

/// `msgr serve PORT --bind 127.0.0.1 --data-dir DIR` with `extra`, run to
/// its end.
fn serve(port: u16, data_dir: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    msgr_bare()
        .args([
            "serve",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .assert()
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_unstable();
    names
}

#[test]
fn bind_takes_a_host_name_and_listens_on_each_of_its_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addrs) =
        Server::start_bound(&dir.path().join("server"), "localhost", 0, &[], "info");
    let addrs: Vec<SocketAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    assert!(addrs.iter().all(|a| a.port() == server.port), "{addrs:?}");
    let world = World { dir, server };
    world.register("Alice");
    world.send("Alice", "Alice", "over localhost");
    let (code, stdout, stderr) = world.read("Alice");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("    over localhost"), "{stdout}");

    // IPv6 literals still work, with or without brackets.
    let dir = tempfile::tempdir().unwrap();
    if TcpListener::bind("[::1]:0").is_ok() {
        for bind in ["::1", "[::1]"] {
            let data_dir = dir.path().join(bind);
            let (server, addrs) = Server::start_bound(&data_dir, bind, 0, &[], "info");
            assert_eq!(addrs, [format!("[::1]:{}", server.port)]);
        }
    }
}

#[test]
fn a_second_serve_on_a_data_dir_in_use_is_refused_while_the_first_serves_on() {
    // It is about the data directory's lock.
    crate::common::sqlite_only();
    let world = World::new();
    let data_dir = &world.server.data_dir;
    let before = listing(data_dir);
    let lock = data_dir.join("lock");
    let expected = format!(
        "msgr: the data directory {} is in use by another msgr serve (process {}), which holds \
         its lock {}; stop that server first, or give this one another --data-dir\n",
        data_dir.display(),
        world.server.pid(),
        lock.display()
    );
    serve(0, data_dir, &[]).code(1).stdout("").stderr(expected);
    assert_eq!(listing(data_dir), before, "the data directory was changed");
    world.register("Alice");
    world.send("Alice", "Alice", "still here");
    assert_eq!(world.queued(), 1);
}

#[test]
fn after_a_kill_9_the_next_serve_takes_the_data_dir() {
    // It is about the data directory's lock.
    crate::common::sqlite_only();
    let mut world = World::new();
    world.register("Alice");
    world.send("Alice", "Alice", "before the kill");
    let status = world.server.signal_and_wait("KILL");
    assert!(!status.success());
    let data_dir = world.server.data_dir.clone();
    // The dead server's lock file is still there, with its process id.
    assert!(data_dir.join("lock").exists());
    world.server = Server::start_with(&data_dir, world.server.port, &[]);
    let (code, stdout, stderr) = world.read("Alice");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("    before the kill"), "{stdout}");
}

#[test]
fn a_serve_that_cannot_listen_leaves_no_data_dir_behind() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("new/data");
    serve(port, &data_dir, &[])
        .code(1)
        .stdout("")
        .stderr(format!(
            "msgr: cannot listen on 127.0.0.1:{port}: Address already in use (os error 98); stop \
         the program using that port or choose another (0 picks a free one)\n"
        ));
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));

    // Nor does a certificate that cannot be used.
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    serve(0, &data_dir, &["--cert", missing, "--key", missing]).code(1);
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));

    // A data directory that existed is kept as it was.
    let kept = dir.path().join("kept");
    std::fs::create_dir(&kept).unwrap();
    std::fs::write(kept.join("notes.txt"), "mine").unwrap();
    serve(port, &kept, &[]).code(1);
    assert_eq!(listing(&kept), ["notes.txt"]);
}

#[test]
fn database_on_the_command_line_wins_over_msgr_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    msgr_bare()
        .env("MSGR_DATA_DIR", &data_dir)
        .args(["serve", "0", "--bind", "127.0.0.1"])
        .args(["--database", "postgresql://nobody@127.0.0.1:1/none"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "cannot reach PostgreSQL at nobody@127.0.0.1:1/none",
        ));
    assert!(!data_dir.exists(), "the data directory was not made");
}
