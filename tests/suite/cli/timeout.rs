//! `--timeout`: connecting, and each answer of the server, must come in
//! time, whatever the server does instead — accept and stay silent, trickle
//! its bytes, or hold one answer back. The client gives up with exit
//! status 3 and says it timed out.

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::common::mitm::Mitm;
use crate::common::{World, msgr_bare};
use msgr::wire::protocol::Request;

/// A port whose listener accepts connections, then runs `behave` on each.
fn silent_port(behave: fn(std::net::TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            std::thread::spawn(move || behave(socket));
        }
    });
    port
}

/// `register` as Alice at 127.0.0.1:`port`, keyring in `config`.
fn register_at(port: u16, config: &tempfile::TempDir) -> assert_cmd::Command {
    let mut command = msgr_bare();
    command
        .arg("--config-dir")
        .arg(config.path())
        .args(["--server", &format!("127.0.0.1:{port}"), "--user", "Alice"])
        .arg("register");
    command
}

fn timed_out_message(port: u16, after: &str) -> String {
    format!(
        "msgr: timed out after {after} waiting for 127.0.0.1:{port}; check that the server is running and reachable, or allow it longer with --timeout SECONDS\n"
    )
}

#[test]
fn a_server_that_accepts_and_never_answers_times_out() {
    let port = silent_port(|socket| {
        std::thread::sleep(Duration::from_secs(30));
        drop(socket);
    });
    let config = tempfile::tempdir().unwrap();
    let started = Instant::now();
    register_at(port, &config)
        .args(["--timeout", "1"])
        .assert()
        .code(3)
        .stdout("")
        .stderr(timed_out_message(port, "1 second"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_server_trickling_bytes_cannot_hold_the_client_past_the_timeout() {
    // The start of a TLS record, one byte every 100 ms: every read gets
    // something, so only a deadline for the whole exchange stops it.
    let port = silent_port(|mut socket| {
        for byte in [0x16u8, 0x03, 0x03, 0x40, 0x00].iter().cycle().take(600) {
            if socket.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let config = tempfile::tempdir().unwrap();
    let started = Instant::now();
    register_at(port, &config)
        .env("MSGR_TIMEOUT", "1.5")
        .assert()
        .code(3)
        .stderr(timed_out_message(port, "1.5 seconds"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn an_answer_held_back_times_out_and_config_sets_the_timeout() {
    let world = World::new();
    world.register("Bob");
    let mitm = Mitm::start(&world.server, |request, response| {
        if matches!(request, Request::GetKey { .. }) {
            std::thread::sleep(Duration::from_secs(4));
        }
        response
    });
    // Registered through the proxy: the account is the one on its port.
    world
        .msgr_at("Alice", mitm.port)
        .args(["register", "--bits", "2048"])
        .assert()
        .success();
    let config = world.config_dir("Alice").join("config.toml");
    std::fs::write(&config, "timeout = 1\n").unwrap();
    let output = world
        .msgr_at("Alice", mitm.port)
        .args(["--json", "key", "Bob"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let error = crate::common::client::json_error(&output, "connection");
    assert_eq!(
        error["message"],
        format!(
            "timed out after 1 second waiting for localhost:{}",
            mitm.port
        )
    );
    // The flag wins over config.toml: given time, the answer arrives.
    world
        .msgr_at("Alice", mitm.port)
        .args(["--timeout", "20", "key", "Bob"])
        .assert()
        .success();
}

#[test]
fn a_timeout_must_be_a_positive_number_of_seconds() {
    let world = World::new();
    for bad in ["0", "-1", "soon", "NaN", "100000"] {
        world
            .msgr("Alice")
            .arg(format!("--timeout={bad}"))
            .arg("whoami")
            .assert()
            .code(2)
            .stderr(predicates::str::contains("--timeout"));
    }
    std::fs::create_dir_all(world.config_dir("Alice")).unwrap();
    let config = world.config_dir("Alice").join("config.toml");
    std::fs::write(&config, "timeout = 0\n").unwrap();
    world
        .msgr("Alice")
        .arg("whoami")
        .assert()
        .code(2)
        .stderr(format!(
            "msgr: {} is not valid: timeout: the timeout must be more than 0 and at most 86400 seconds; the known keys are server, user, ca_cert, json, passphrase_file, pin_policy and timeout\n",
            config.display()
        ));
}
