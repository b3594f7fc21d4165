//! Slow and idle clients (issue 3, item 4): hundreds of silent sockets and
//! handshakes trickled byte by byte do not keep a real user from being
//! served promptly, because connections that have not yet said hello hold
//! no slot and the oldest of them is dropped when too many wait.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::World;
use crate::common::raw::tls_session;

/// A real user's command must finish within this, although the handshake
/// timeout (60 s here) would keep a slot-holding attacker around far longer.
const PROMPT: Duration = Duration::from_secs(5);

/// The first bytes a TLS client sends (its ClientHello record).
fn client_hello() -> Vec<u8> {
    let mut session = tls_session();
    let mut hello = Vec::new();
    while session.wants_write() {
        session.write_tls(&mut hello).unwrap();
    }
    hello
}

/// A thread that sends `bytes` to `addr` one byte every `pace` until done
/// or stopped, then keeps the socket open until stopped.
fn trickle(addr: &str, bytes: Vec<u8>, pace: Duration, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let mut socket = TcpStream::connect(addr).unwrap();
    std::thread::spawn(move || {
        for byte in bytes {
            if stop.load(Ordering::Relaxed) || socket.write_all(&[byte]).is_err() {
                return;
            }
            std::thread::sleep(pace);
        }
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(pace);
        }
    })
}

/// Run `msgr` for `user` with `args`, asserting success within [`PROMPT`].
fn promptly(world: &World, user: &str, args: &[&str]) -> String {
    let started = Instant::now();
    let output = world.msgr(user).args(args).output().unwrap();
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "msgr {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(took < PROMPT, "msgr {args:?} took {took:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn idle_sockets_and_trickled_handshakes_do_not_keep_a_real_user_out() {
    // MSGR_SOAK=1: ten times the idle sockets.
    let idle_sockets = if crate::common::soak() { 3000 } else { 300 };
    let world = World::with_server_args(&["--handshake-timeout", "60", "--max-pending", "64"]);
    let stop = Arc::new(AtomicBool::new(false));
    let tricklers: Vec<_> = (0..8)
        .map(|_| {
            trickle(
                &world.server.addr,
                client_hello(),
                Duration::from_millis(50),
                Arc::clone(&stop),
            )
        })
        .collect();
    let idle: Vec<TcpStream> = (0..idle_sockets)
        .map(|_| TcpStream::connect(&world.server.addr).unwrap())
        .collect();

    promptly(&world, "Alice", &["register", "--bits", "2048"]);
    promptly(&world, "John", &["register", "--bits", "2048"]);
    promptly(&world, "Alice", &["create", "John", "made it through"]);
    let more_idle: Vec<TcpStream> = (0..idle_sockets)
        .map(|_| TcpStream::connect(&world.server.addr).unwrap())
        .collect();
    let stdout = promptly(&world, "John", &["read"]);
    assert!(stdout.contains("made it through"));

    stop.store(true, Ordering::Relaxed);
    for trickler in tricklers {
        trickler.join().unwrap();
    }
    drop((idle, more_idle));
}

#[test]
fn a_trickled_handshake_is_cut_off_by_the_handshake_timeout() {
    let world = World::with_server_args(&["--handshake-timeout", "1"]);
    let mut socket = TcpStream::connect(&world.server.addr).unwrap();
    socket
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let started = Instant::now();
    // Keep sending: activity does not extend the deadline.
    let closed = client_hello().into_iter().cycle().any(|byte| {
        std::thread::sleep(Duration::from_millis(20));
        assert!(started.elapsed() < Duration::from_secs(10), "never closed");
        socket.write_all(&[byte]).is_err()
    });
    assert!(closed);
    assert!(started.elapsed() >= Duration::from_millis(900));
}
