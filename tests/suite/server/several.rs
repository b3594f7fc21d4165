//! Several servers on one PostgreSQL database behind a load balancer
//! (`common::cluster`): one certificate for all, any account served by
//! any server, a read waiting on one woken by a send through another, a
//! logout through one honoured by the other, and a server killed under
//! load losing nothing acknowledged. These need a PostgreSQL server
//! (`MSGR_TEST_DATABASE_URL`) and are skipped, saying so, without one.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::client::json_lines;
use crate::common::cluster::Cluster;
use crate::common::raw::Client;
use msgr::wire::protocol::{ErrorCode, Request, Response};

/// Two servers on a new database, or return (skipped) without one.
macro_rules! cluster {
    ($test:literal) => {
        match Cluster::start($test) {
            Some(cluster) => cluster,
            None => return,
        }
    };
}

#[test]
fn servers_on_one_database_present_one_certificate_and_serve_any_account() {
    let cluster = cluster!("servers_present_one_certificate");
    assert_eq!(cluster.node(0).fingerprint, cluster.node(1).fingerprint);
    cluster.balancer.prefer(0);
    cluster.register("Alice");
    cluster.balancer.prefer(1);
    cluster.register("Bob");
    cluster.balancer.prefer(0);
    cluster
        .msgr("Alice")
        .args(["create", "Bob", "through the first"])
        .assert()
        .success();
    cluster.balancer.prefer(1);
    cluster
        .msgr("Bob")
        .arg("read")
        .assert()
        .success()
        .stdout(predicates::str::contains("through the first"));
    assert!(cluster.balancer.handed(0) >= 2 && cluster.balancer.handed(1) >= 2);
}

#[test]
fn a_read_waiting_on_one_server_wakes_for_a_send_through_the_other() {
    let cluster = cluster!("a_read_waiting_wakes_across");
    cluster.register("Alice");
    cluster.register("Bob");
    // Bob's session and keys first, so that his waiting read only waits.
    cluster.msgr("Bob").arg("read").assert().success();

    cluster.balancer.prefer(1);
    let handed = cluster.balancer.handed(1);
    let reader = cluster
        .msgr_process("Bob")
        .args(["read", "--wait", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.balancer.handed(1) == handed {
        assert!(Instant::now() < deadline, "the reader never connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Time for its fetch to begin waiting.
    std::thread::sleep(Duration::from_millis(500));
    cluster.balancer.prefer(0);
    cluster
        .msgr("Alice")
        .args(["create", "Bob", "wake up"])
        .assert()
        .success();
    let sent = Instant::now();
    let output = reader.wait_with_output().unwrap();
    let woken = sent.elapsed();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("wake up"));
    // Without the hint, the waiting read would only look again after
    // five seconds.
    assert!(woken < Duration::from_secs(4), "woken after {woken:?}");
}

#[test]
fn a_logout_through_one_server_stops_the_session_on_the_other() {
    let cluster = cluster!("a_logout_stops_the_session_elsewhere");
    cluster.register("Alice");
    cluster.msgr("Alice").arg("login").assert().success();
    let mut elsewhere = Client::greeted(cluster.node(1));
    let answer = elsewhere.request(&Request::Authenticate {
        user: "Alice".into(),
        token: stored_token(&cluster, "Alice"),
    });
    assert!(
        matches!(answer, Response::Authenticated { .. }),
        "{answer:?}"
    );
    cluster.balancer.prefer(0);
    let handed = cluster.balancer.handed(0);
    cluster.msgr("Alice").arg("logout").assert().success();
    assert!(
        cluster.balancer.handed(0) > handed,
        "logged out through the first"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = elsewhere.request(&Request::Fetch {
            after: 0,
            limit: 1,
            wait_ms: 0,
        });
        match answer {
            Response::Messages { .. } => {}
            Response::Error { code, .. } => {
                assert_eq!(code, ErrorCode::AuthFailed);
                break;
            }
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < deadline, "the session went on");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The session token in `user`'s keyring for the balancer's address.
fn stored_token(cluster: &Cluster, user: &str) -> msgr::wire::protocol::Base64Bytes {
    let path = (cluster.world)
        .account_dir_at(user, cluster.balancer.port)
        .join("session.toml");
    let session: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let token = session["token"].as_str().unwrap();
    let engine = base64::engine::general_purpose::STANDARD;
    msgr::wire::protocol::Base64Bytes(base64::Engine::decode(&engine, token).unwrap())
}

#[test]
fn a_server_killed_under_load_loses_no_acknowledged_message() {
    const SENDERS: usize = 4;
    const EACH: usize = 25;
    let cluster = cluster!("a_server_killed_under_load");
    cluster.register("Bob");
    for sender in 0..SENDERS {
        cluster.register(&format!("Sender{sender}"));
    }
    let done = AtomicUsize::new(0);
    let acknowledged: Vec<Vec<String>> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let (cluster, done) = (&cluster, &done);
                scope.spawn(move || {
                    let mut acknowledged = Vec::new();
                    for n in 0..EACH {
                        let body = format!("body-{sender}-{n}");
                        let output = cluster
                            .msgr(&format!("Sender{sender}"))
                            .args(["create", "Bob", &body])
                            .output()
                            .unwrap();
                        match output.status.code() {
                            Some(0) => acknowledged.push(body),
                            // The connection to the killed server broke.
                            Some(3) => {}
                            other => panic!(
                                "create exited {other:?}: {}",
                                String::from_utf8_lossy(&output.stderr)
                            ),
                        }
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    acknowledged
                })
            })
            .collect();
        while done.load(Ordering::SeqCst) < SENDERS * EACH / 3 {
            std::thread::sleep(Duration::from_millis(5));
        }
        cluster.node(0).signal("KILL");
        senders.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let acknowledged: Vec<String> = acknowledged.into_iter().flatten().collect();
    assert!(
        acknowledged.len() > SENDERS * EACH / 2,
        "most creates succeed through the server left"
    );

    let output = cluster
        .msgr("Bob")
        .args(["--json", "read"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let mut shown: BTreeMap<String, usize> = BTreeMap::new();
    for message in json_lines(&output.stdout) {
        *shown
            .entry(message["body"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for body in &acknowledged {
        assert_eq!(shown.get(body), Some(&1), "{body} shown once");
    }
    assert!(shown.values().all(|&count| count == 1), "{shown:?}");
}
