//! Several servers on one PostgreSQL database behind a load balancer
//! (`common::cluster`): one certificate for all, any account served by
//! any server, a read waiting on one woken by a send through another
//! (or, its hint lost, by its own look every few seconds), waiting reads
//! holding no connection to the database, a logout through one honoured
//! by the other, a server killed under load losing nothing acknowledged,
//! a server frozen in the middle of a commit holding the other up for
//! seconds only, and the hints a frozen server leaves unread dropped; and
//! the servers riding out a restart of the database.
//! These need a PostgreSQL server
//! (`MSGR_TEST_DATABASE_URL`; for the restart, one of its own) and are
//! skipped, saying so, without one.

use std::collections::BTreeMap;
use std::net::{IpAddr, TcpStream};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::client::json_lines;
use crate::common::cluster::Cluster;
use crate::common::raw::{Client, tcp_from};
use crate::common::{Server, TestDatabase, eventually};
use msgr::server::postgres::testing::{HINT_CHANNEL, POOL_SIZE};
use msgr::wire::protocol::{Request, Response};

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
    assert_a_send_wakes_a_read_waiting_on_the_other_server(&cluster, "wake up");
}

/// Bob's `read --wait` on the second server is woken by Alice's send
/// through the first sooner than a waiting read looks again by itself.
fn assert_a_send_wakes_a_read_waiting_on_the_other_server(cluster: &Cluster, body: &str) {
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
        .args(["create", "Bob", body])
        .assert()
        .success();
    let sent = Instant::now();
    let output = reader.wait_with_output().unwrap();
    let woken = sent.elapsed();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains(body));
    // Without the hint, the waiting read would only look again after
    // five seconds.
    assert!(woken < Duration::from_secs(4), "woken after {woken:?}");
}

#[test]
fn waiting_reads_hold_no_database_connection() {
    let cluster = cluster!("waiting_reads_hold_no_connection");
    cluster.register("Alice");
    cluster.register("Bob");
    cluster.msgr("Bob").arg("login").assert().success();
    let elsewhere: IpAddr = "127.0.0.2".parse().unwrap();
    // More than the connections a server opens to the database.
    let mut readers: Vec<Client> = (0..POOL_SIZE + 4)
        .map(|_| waiting_read(&cluster, tcp_from(elsewhere, &cluster.node(0).addr)))
        .collect();

    // Alice's send, through the same server, needs a connection to the
    // database: to look Bob up, and to queue the message.
    cluster.balancer.prefer(0);
    let handed = cluster.balancer.handed(0);
    let started = Instant::now();
    cluster
        .msgr("Alice")
        .args(["--timeout", "20", "create", "Bob", "for every reader"])
        .assert()
        .success();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "the send took {took:?}");
    assert!(
        cluster.balancer.handed(0) > handed,
        "sent through the first"
    );
    for reader in &mut readers {
        let answer = reader.response();
        assert!(
            matches!(&answer, Response::Messages { messages } if messages.len() == 1),
            "{answer:?}"
        );
    }
}

#[test]
fn a_waiting_read_finds_a_message_whose_hint_was_lost() {
    let cluster = cluster!("a_waiting_read_finds_a_message_unhinted");
    cluster.register("Alice");
    cluster.register("Bob");
    cluster.msgr("Bob").arg("login").assert().success();
    let first = TcpStream::connect(&cluster.node(0).addr).unwrap();
    let mut reader = waiting_read(&cluster, first);

    // A message queued with no hint to any server, as when the hint was
    // sent while their listening connections were down.
    let database = cluster.node(0).database.clone().unwrap();
    let started = Instant::now();
    database.execute(
        "INSERT INTO messages (recipient_id, sender_id, envelope, received_at)
         SELECT b.id, a.id, '\\x00', extract(epoch FROM now())::bigint
         FROM users AS a, users AS b
         WHERE a.name_key = 'alice' AND b.name_key = 'bob'",
    );
    let answer = reader.response();
    assert!(
        matches!(&answer, Response::Messages { messages } if messages.len() == 1),
        "{answer:?}"
    );
    // Found by the read's own look every 5 seconds.
    let found = started.elapsed();
    assert!(found < Duration::from_secs(8), "found after {found:?}");
}

#[test]
fn a_logout_through_one_server_stops_the_session_on_the_other() {
    let cluster = cluster!("a_logout_stops_the_session_elsewhere");
    cluster.register("Alice");
    cluster.msgr("Alice").arg("login").assert().success();
    let mut elsewhere = Client::greeted(cluster.node(1));
    let token = (cluster.world).stored_token_at("Alice", cluster.balancer.port);
    elsewhere.assert_authenticated("Alice", &token);
    cluster.balancer.prefer(0);
    let handed = cluster.balancer.handed(0);
    cluster.msgr("Alice").arg("logout").assert().success();
    assert!(
        cluster.balancer.handed(0) > handed,
        "logged out through the first"
    );
    elsewhere.assert_session_ends();
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

    assert_bob_reads_each_once(&cluster, &acknowledged);
}

#[test]
fn a_server_frozen_in_a_commit_holds_the_other_up_only_briefly() {
    let cluster = cluster!("a_server_frozen_in_a_commit");
    cluster.register("Alice");
    cluster.register("Bob");
    // Alice's session and Bob's key first, so that her creates below only
    // send.
    let first = "before the freeze".to_owned();
    cluster
        .msgr("Alice")
        .args(["create", "Bob", &first])
        .assert()
        .success();
    let database = cluster.node(0).database.clone().unwrap();

    // Another session holds Bob's queue until the first server's batch for
    // him waits for it; the server is frozen (SIGSTOP), and then the batch
    // gets Bob's queue, and holds it.
    let blocker = database.hold_queue("bob");
    cluster.balancer.prefer(0);
    let frozen_send = cluster
        .msgr_process("Alice")
        .args([
            "--timeout",
            "60",
            "create",
            "Bob",
            "through the frozen server",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let a_minute = Duration::from_secs(60);
    eventually("the first server's batch to wait", a_minute, || {
        database.has_session_where("wait_event_type = 'Lock'")
    });
    cluster.node(0).signal("STOP");
    blocker.execute("ROLLBACK");
    // The session that held the queue is idle outside a transaction now:
    // only a server's can be in one.
    eventually(
        "the frozen server's batch to hold Bob's queue",
        a_minute,
        || database.has_session_where("state = 'idle in transaction'"),
    );

    // A send to Bob through the other server goes through within seconds,
    // long before the client's patience (or TCP's) runs out.
    cluster.balancer.prefer(1);
    let through_the_other = "through the other server".to_owned();
    let started = Instant::now();
    cluster
        .msgr("Alice")
        .args(["--timeout", "20", "create", "Bob", &through_the_other])
        .assert()
        .success();
    let held_up = started.elapsed();
    assert!(held_up < Duration::from_secs(15), "held up for {held_up:?}");

    // Thawed, the first server tells its client that nothing was done, and
    // serves again.
    cluster.node(0).signal("CONT");
    let output = frozen_send.wait_with_output().unwrap();
    assert_eq!(
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).as_ref()
        ),
        (
            Some(3),
            "msgr: the server cannot reach its database now and did nothing; \
             try again in a moment\n"
        )
    );
    cluster.balancer.prefer(0);
    let handed = cluster.balancer.handed(0);
    let after = "after the thaw".to_owned();
    cluster
        .msgr("Alice")
        .args(["create", "Bob", &after])
        .assert()
        .success();
    assert!(
        cluster.balancer.handed(0) > handed,
        "the thawed server served"
    );

    let expected = [first, through_the_other, after].map(|body| (body, 1));
    assert_eq!(bob_reads(&cluster), BTreeMap::from(expected));
}

#[test]
fn the_database_gives_up_a_frozen_servers_unread_hints() {
    let Some(database) = TestDatabase::create("a_frozen_servers_unread_hints") else {
        return;
    };
    if !database.over_tcp() {
        eprintln!(
            "skipped the_database_gives_up_a_frozen_servers_unread_hints: it needs the \
             PostgreSQL server over TCP, which a Unix socket's connections have no time limit on"
        );
        return;
    }
    let database = Arc::new(database);
    let dir = tempfile::tempdir().unwrap();
    // What a server leaves unacknowledged for 2 s (rather than 30) it
    // gives up on; and the database, what the server leaves unread.
    let server =
        Server::start_shared_with(&dir.path().join("frozen"), &database, "tcp_user_timeout=2");
    let listening = "query LIKE 'LISTEN%'";
    let a_minute = Duration::from_secs(60);
    eventually("the server to listen for hints", a_minute, || {
        database.has_session_where(listening)
    });

    // Frozen, the server reads nothing. Other servers' hints (here a test
    // session's, 35 MB of them, more than the sockets' buffers hold) pile
    // up in PostgreSQL's notification queue, which every server's commits
    // fail on once it is full, until the database gives the frozen
    // server's listener up and drops its share of the queue.
    server.signal("STOP");
    database.execute(&format!(
        "SELECT count(*) FROM (SELECT pg_notify('{HINT_CHANNEL}', repeat('x', 7000) || n)
         FROM generate_series(1, 5000) AS n) AS hints"
    ));
    eventually("the frozen server's hints to be dropped", a_minute, || {
        !database.has_session_where(listening)
            && database.count("SELECT count(*) WHERE pg_notification_queue_usage() = 0") == 1
    });

    // Thawed, the server finds its listener gone and listens again.
    server.signal("CONT");
    eventually("the thawed server to listen again", a_minute, || {
        database.has_session_where(listening)
    });
}

/// A fetch waiting for Bob's messages on `tcp` (to a server of
/// `cluster`), with the session his `login` stored, once it is seen to
/// wait.
fn waiting_read(cluster: &Cluster, tcp: TcpStream) -> Client {
    let mut reader = Client::over(tcp).greet();
    let token = (cluster.world).stored_token_at("Bob", cluster.balancer.port);
    reader.assert_authenticated("Bob", &token);
    let wait = Request::Fetch {
        after: 0,
        limit: 10,
        wait_ms: 30_000,
    };
    reader.send_raw(&wait.to_frame());
    assert!(reader.stays_silent_for(Duration::from_millis(100)));
    reader
}

/// Bob's `read` shows each of `bodies` once, and nothing twice.
fn assert_bob_reads_each_once(cluster: &Cluster, bodies: &[String]) {
    let shown = bob_reads(cluster);
    for body in bodies {
        assert_eq!(shown.get(body), Some(&1), "{body} shown once");
    }
    assert!(shown.values().all(|&count| count == 1), "{shown:?}");
}

/// What Bob's `read` shows: each body, and how many times.
fn bob_reads(cluster: &Cluster) -> BTreeMap<String, usize> {
    let output = cluster
        .msgr("Bob")
        .args(["--json", "read"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let mut shown = BTreeMap::new();
    for message in json_lines(&output.stdout) {
        *shown
            .entry(message["body"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    shown
}

/// A PostgreSQL server the test may stop and start, and the command that
/// does so (given `stop -m fast` or `start`), from the environment; else
/// `None`, having said why (or failed, where PostgreSQL is required).
fn restartable_postgres() -> Option<(String, String)> {
    const URL: &str = "MSGR_TEST_RESTARTABLE_DATABASE_URL";
    const CTL: &str = "MSGR_TEST_POSTGRES_CTL";
    match (std::env::var(URL), std::env::var(CTL)) {
        (Ok(url), Ok(ctl)) if !url.is_empty() && !ctl.is_empty() => Some((url, ctl)),
        _ => {
            assert!(
                std::env::var("MSGR_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "MSGR_REQUIRE_POSTGRES=1 but {URL} and {CTL} are not both set"
            );
            eprintln!(
                "skipped: no PostgreSQL server this test may restart; set {URL} to one only it \
                 uses and {CTL} to the pg_ctl command that controls it (as .ci/run does)"
            );
            None
        }
    }
}

/// Run `pg_ctl`'s `action` through the command given.
fn postgres_ctl(ctl: &str, action: &str) {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{ctl} {action} >/dev/null"))
        .status()
        .unwrap();
    assert!(status.success(), "{ctl} {action} failed");
}

/// What the clients saw while the database restarted.
#[derive(Default)]
struct Seen {
    /// Bodies of the creates that exited 0.
    sent: Vec<String>,
    /// The stderr of each create that failed, with its exit status.
    failed: Vec<(Option<i32>, String)>,
}

#[test]
fn servers_ride_out_a_database_restart_and_recover_by_themselves() {
    let Some((url, ctl)) = restartable_postgres() else {
        return;
    };
    let database = TestDatabase::create_on(&url, "servers_ride_out_a_restart");
    let mut cluster = Cluster::on(std::sync::Arc::new(database));
    cluster.register("Alice");
    cluster.register("Bob");
    let seen = std::sync::Mutex::new(Seen::default());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let successes = || seen.lock().unwrap().sent.len();
    let failures = || seen.lock().unwrap().failed.len();
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let body = format!("body-{n}");
                let output = cluster
                    .msgr("Alice")
                    .args(["create", "Bob", &body])
                    .output()
                    .unwrap();
                let mut seen = seen.lock().unwrap();
                match output.status.code() {
                    Some(0) => seen.sent.push(body),
                    code => seen
                        .failed
                        .push((code, String::from_utf8_lossy(&output.stderr).into_owned())),
                }
            }
        });
        wait_for("creates before the restart", &|| successes() >= 5);
        postgres_ctl(&ctl, "stop -m fast");
        wait_for("creates failing while it is down", &|| failures() >= 3);
        postgres_ctl(&ctl, "start");
        let before = successes();
        wait_for("creates after the restart", &|| successes() >= before + 5);
        stop.store(true, Ordering::SeqCst);
    });
    let seen = seen.into_inner().unwrap();
    for (code, stderr) in &seen.failed {
        assert_eq!(*code, Some(3), "{stderr}");
        assert_eq!(
            stderr,
            "msgr: the server cannot reach its database now and did nothing; try again in a \
             moment\n"
        );
    }
    assert!(cluster.world.server.is_running() && cluster.second.is_running());

    // Nothing acknowledged was lost, and the hints flow again.
    assert_bob_reads_each_once(&cluster, &seen.sent);
    assert_a_send_wakes_a_read_waiting_on_the_other_server(&cluster, "after the restart");
}
