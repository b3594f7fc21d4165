//! Crash safety (issue 3, item 6): a server killed with SIGKILL in the
//! middle of a burst of creates delivers every create that reported
//! success exactly once after it restarts; a reader that dies between
//! receiving and acknowledging loses nothing and duplicates nothing.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::World;
use crate::common::raw::Client;

/// Server flags that keep the rate limits out of the way of the crowd.
const ROOMY: &[&str] = &[
    "--max-logins-per-minute",
    "10000",
    "--max-registrations-per-hour",
    "10000",
];

/// Wait for `done`, for up to a minute.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    crate::common::eventually(what, Duration::from_secs(60), done);
}

/// Whether process `pid` (a child not yet reaped) has died: its main
/// thread is a zombie and every other thread has exited too, so that its
/// files (the listening socket, the data directory's lock) are closed. A
/// thread still finishing an fsync outlives the main thread's exit.
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => {
            let zombie = stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'));
            let threads =
                std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |tasks| tasks.count());
            zombie && threads <= 1
        }
        Err(_) => true,
    }
}

/// How often each line starting with `prefix` appears in `text`.
fn line_counts<'a>(text: &'a str, prefix: &str) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    // Bodies are indented in human output.
    for line in text
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with(prefix))
    {
        *counts.entry(line).or_default() += 1;
    }
    counts
}

/// Senders creating to John in a loop, recording what reported success.
struct Load<'a> {
    world: &'a World,
    succeeded: Mutex<Vec<String>>,
    successes: AtomicUsize,
    failures: AtomicUsize,
    stop: AtomicBool,
}

impl Load<'_> {
    /// Create numbered messages as `sender` until stopped.
    fn run(&self, sender: &str) {
        for n in 0.. {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let body = format!("crash-{sender}-{n}");
            let output = self
                .world
                .msgr(sender)
                .args(["create", "John", &body])
                .output();
            if output.unwrap().status.success() {
                self.succeeded.lock().unwrap().push(body);
                self.successes.fetch_add(1, Ordering::SeqCst);
            } else {
                self.failures.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn successes(&self) -> usize {
        self.successes.load(Ordering::SeqCst)
    }

    fn failures(&self) -> usize {
        self.failures.load(Ordering::SeqCst)
    }
}

/// Sets its flag when dropped, also while unwinding.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Kill the server `pid` with SIGKILL and wait until it is dead.
fn kill_9(pid: u32) {
    let killed = Command::new("kill")
        .args(["-s", "KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_until("the server to die", || is_dead(pid));
}

// Over 60 lines: one kill -9 under load, told in order; each step needs
// the state the one before it left.
#[test]
fn creates_acknowledged_before_a_kill_9_are_delivered_exactly_once() {
    // MSGR_SOAK=1: more kills, longer bursts.
    let (kills, burst) = if crate::common::soak() {
        (5, 40)
    } else {
        (1, 8)
    };
    let mut world = World::with_server_args(ROOMY);
    let senders = ["s0", "s1", "s2", "s3"];
    for user in senders.iter().chain(&["John"]) {
        world.register(user);
    }
    let load = Load {
        world: &world,
        succeeded: Mutex::default(),
        successes: AtomicUsize::new(0),
        failures: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    };
    let last = std::thread::scope(|scope| {
        // A failed wait below must stop the senders, or the scope would
        // wait for them forever instead of reporting the failure.
        let _stop = StopOnDrop(&load.stop);
        for sender in senders {
            let load = &load;
            scope.spawn(move || load.run(sender));
        }
        let mut pid = load.world.server.pid();
        let mut restarted = None;
        for _ in 0..kills {
            let before = load.successes();
            wait_until("creates before the kill", || {
                load.successes() >= before + burst
            });
            let failed = load.failures();
            kill_9(pid);
            // The server stays dead until a create has run into it, so
            // that the kill is sure to have cost some create its answer.
            wait_until("a create to fail against the dead server", || {
                load.failures() > failed
            });
            let server = load.world.server.start_again();
            pid = server.pid();
            restarted = Some(server);
        }
        let before = load.successes();
        wait_until("creates after the restart", || {
            load.successes() >= before + burst
        });
        restarted.expect("at least one kill")
    });
    let succeeded = load.succeeded.into_inner().unwrap();
    world.server = last;

    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    let counts = line_counts(&stdout, "crash-");
    for body in &succeeded {
        assert_eq!(counts.get(body.as_str()), Some(&1), "{body}");
    }
    // A create that failed may still have been stored, but never twice.
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    let (code, stdout, _) = world.read("John");
    assert_eq!((code, stdout.as_str()), (0, ""));
}

/// Queue `n` messages of about `size` bytes from Alice to John, each on a
/// line of its own starting with `body-`.
fn queue_bodies(world: &World, n: usize, size: usize) {
    for i in 0..n {
        let body = format!("body-{i}-{}", "x".repeat(size));
        world.send("Alice", "John", &body);
    }
}

#[test]
fn a_reader_that_leaves_without_acknowledging_loses_nothing() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    queue_bodies(&world, 3, 10);
    // A raw client receives everything as John, then vanishes without ack.
    let john = msgr::wire::crypto::PrivateKey::from_pkcs8_pem(
        &std::fs::read_to_string(world.account_dir("John").join("identity.pem")).unwrap(),
    )
    .unwrap();
    let mut reader = Client::greeted(&world.server);
    reader.log_in("John", &john);
    assert_eq!(reader.fetch().len(), 3);
    drop(reader);
    assert_eq!(world.queued(), 3);

    let (code, stdout, _) = world.read("John");
    assert_eq!(code, 0);
    let counts = line_counts(&stdout, "body-");
    assert_eq!((counts.len(), counts.values().max()), (3, Some(&1)));
    world.assert_queued_soon(0);
}

#[test]
fn a_read_killed_before_its_ack_is_redelivered_and_then_shown_once() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    // More than a pipe holds, so the reader blocks writing its output
    // before it can acknowledge anything.
    queue_bodies(&world, 6, 30_000);
    let mut read = world
        .msgr_process("John")
        .arg("read")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = [0; 1024];
    read.stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert!(first.starts_with(b"From: Alice"));
    read.kill().unwrap();
    read.wait().unwrap();
    assert_eq!(world.queued(), 6, "nothing was acknowledged");

    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    let counts = line_counts(&stdout, "body-");
    assert_eq!((counts.len(), counts.values().max()), (6, Some(&1)));
    let (code, stdout, _) = world.read("John");
    assert_eq!((code, stdout.as_str()), (0, ""));
    world.assert_queued_soon(0);
}
