//! Waiting reads: `read --wait SECONDS` returns as soon as a message
//! arrives (or with nothing after the timeout), `read --follow` prints and
//! acknowledges each message as it arrives until SIGINT or SIGTERM, without
//! blocking other commands of the same account, and `read --limit N`.

use std::time::{Duration, Instant};

use crate::common::World;
use crate::common::client::json_lines;

#[test]
fn wait_returns_as_soon_as_a_message_arrives() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    // The reader logs in first, so the wait is all that is left.
    world.msgr("John").arg("login").assert().success();
    let started = Instant::now();
    let reader = world.background("John", &["read", "--wait", "60"]);
    world.send("Alice", "John", "worth the wait");
    let (status, lines, stderr) = reader.finish();
    assert!(status.success(), "{stderr}");
    assert!(
        lines.contains(&"    worth the wait".to_owned()),
        "{lines:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it did not wait for the timeout"
    );
}

#[test]
fn wait_with_nothing_arriving_exits_0_after_the_timeout() {
    let world = World::new();
    world.register("John");
    let started = Instant::now();
    world
        .msgr("John")
        .args(["read", "--wait", "1"])
        .assert()
        .success()
        .stdout("");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "returned after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(15),
        "returned after {waited:?}"
    );
}

#[test]
fn follow_prints_each_message_and_does_not_block_the_account() {
    for signal in ["TERM", "INT"] {
        let world = World::new();
        world.register("Alice");
        world.register("John");
        world.send("Alice", "John", "queued before");
        let follower = world.background("John", &["--json", "read", "--follow"]);
        let first = follower.next_line();
        world.send("Alice", "John", "sent while following");
        let second = follower.next_line();
        // Other commands of John's account run while he follows.
        world.send("John", "Alice", "John writes meanwhile");
        world.send("Alice", "John", "one more");
        let third = follower.next_line();
        follower.signal(signal);
        let (status, rest, stderr) = follower.finish();
        assert!(status.success(), "SIG{signal}: {status} {stderr}");
        assert!(rest.is_empty(), "{rest:?}");
        let bodies: Vec<_> = json_lines([first, second, third].join("\n").as_bytes())
            .iter()
            .map(|m| m["body"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            bodies,
            ["queued before", "sent while following", "one more"]
        );
        // Everything shown was acknowledged.
        let (code, stdout, _) = world.read("John");
        assert_eq!((code, stdout.as_str()), (0, ""));
        let (_, stdout, _) = world.read("Alice");
        assert!(stdout.contains("John writes meanwhile"));
    }
}

#[test]
fn limit_reads_at_most_n_oldest_first() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    for body in ["one", "two", "three"] {
        world.send("Alice", "John", body);
    }
    let output = world
        .msgr("John")
        .args(["--json", "read", "--limit", "2"])
        .output()
        .unwrap();
    let bodies: Vec<_> = json_lines(&output.stdout)
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["one", "two"]);
    let (_, stdout, _) = world.read("John");
    assert!(
        stdout.contains("three") && !stdout.contains("two"),
        "{stdout}"
    );
}

#[test]
fn follow_with_a_limit_stops_after_n_messages() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let follower = world.background("John", &["read", "--follow", "--limit", "1"]);
    world.send("Alice", "John", "just this one");
    let (status, lines, stderr) = follower.finish();
    assert!(status.success(), "{stderr}");
    assert!(lines.contains(&"    just this one".to_owned()), "{lines:?}");
}

/// How many sessions `user` has begun on the server (by token or login),
/// from its log.
fn sessions_begun(world: &World, user: &str) -> usize {
    let user = format!("user={user}");
    world
        .server
        .log_text()
        .lines()
        .filter(|line| {
            (line.contains("authenticated") || line.contains("logged in")) && line.contains(&user)
        })
        .count()
}

#[test]
fn follow_logs_in_again_when_its_session_expires() {
    // Five seconds: every command has at least four to use its token.
    let world = World::with_server_args(&["--session-ttl", "5"]);
    world.register("Alice");
    world.register("John");
    let follower = world.background("John", &["read", "--follow"]);
    world.send("Alice", "John", "before expiry");
    assert_eq!(follower.next_line(), "From: Alice");
    // Let John's session run out while he waits.
    std::thread::sleep(Duration::from_millis(6100));
    world.send("Alice", "John", "after expiry");
    // After the first "From:" line: Date, blank, body, blank, then the
    // second message's From, Date, blank and body.
    let lines: Vec<String> = (0..8).map(|_| follower.next_line()).collect();
    assert_eq!(lines[2], "    before expiry", "{lines:?}");
    assert_eq!(lines[7], "    after expiry", "{lines:?}");
    // That message answered a fetch made before the expiry; the next one
    // needs a fetch, and so a login, after it.
    world.send("Alice", "John", "after logging in again");
    let lines: Vec<String> = (0..5).map(|_| follower.next_line()).collect();
    assert_eq!(lines[4], "    after logging in again", "{lines:?}");
    follower.signal("TERM");
    let (status, _, stderr) = follower.finish();
    assert!(status.success(), "{stderr}");
    assert!(
        sessions_begun(&world, "John") >= 2,
        "John logged in again: {}",
        world.server.log_text()
    );
    let (code, stdout, _) = world.read("John");
    assert_eq!((code, stdout.as_str()), (0, ""), "both were acknowledged");
}

#[test]
fn follow_outlives_a_server_restart() {
    let mut world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "before the restart");
    world.msgr("John").args(["key", "Alice"]).assert().success();
    let follower = world.background("John", &["--json", "read", "--follow"]);
    let first = follower.next_line();
    world.restart();
    world.send("Alice", "John", "after the restart");
    let second = follower.next_line();
    follower.signal("TERM");
    let (status, rest, stderr) = follower.finish();
    assert!(status.success(), "{status} {stderr}");
    assert!(rest.is_empty(), "{rest:?}");
    let bodies: Vec<_> = json_lines([first, second].join("\n").as_bytes())
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["before the restart", "after the restart"]);
    let notices: Vec<_> = json_lines(stderr.as_bytes())
        .iter()
        .map(|n| {
            (
                n["level"].as_str().unwrap().to_owned(),
                n["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let port = world.server.port;
    assert_eq!(
        notices,
        [
            (
                "warning".to_owned(),
                "lost the connection (the server closed the connection); trying to connect again for up to 300 seconds".to_owned()
            ),
            (
                "notice".to_owned(),
                format!("connected again to localhost:{port}; following on")
            ),
        ]
    );
    // Nothing was shown twice, and nothing is left queued.
    assert_eq!(world.queued(), 0);
}

#[test]
fn follow_gives_up_after_reconnect_for() {
    let mut world = World::new();
    world.register("John");
    let before = sessions_begun(&world, "John");
    let follower = world.background("John", &["read", "--follow", "--reconnect-for", "2"]);
    // Connected and logged in before the server goes.
    crate::common::eventually("the follower's login", Duration::from_secs(30), || {
        sessions_begun(&world, "John") > before
    });
    let stopped = Instant::now();
    let status = world.server.signal_and_wait("TERM");
    assert!(status.success());
    let (status, lines, stderr) = follower.finish();
    let port = world.server.port;
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(lines.is_empty(), "{lines:?}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "msgr: could not reconnect to localhost:{port} within 2 seconds: cannot connect to localhost:{port}: "
        )) && last.ends_with(
            "; check that the server is running, or keep trying longer with --reconnect-for SECONDS"
        ),
        "{stderr}"
    );
    assert!(stopped.elapsed() < Duration::from_secs(20));
}

#[test]
fn reconnect_for_belongs_to_follow() {
    let world = World::new();
    world
        .msgr("John")
        .args(["read", "--reconnect-for", "10"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--follow"));
}
