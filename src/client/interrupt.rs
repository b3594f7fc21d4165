//! Graceful stop for commands that wait on the server (`read --wait`,
//! `read --follow`). The first SIGINT or SIGTERM sets a flag: a request
//! blocked waiting for messages is woken by shutting its connection down,
//! and work in progress (the message being shown and acknowledged) is
//! finished before the command exits. A pause between attempts to
//! reconnect ends early too. A second signal ends the process at once, as
//! if msgr had not caught the first.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::client::net::Canceller;

/// Shared between the command and the signal thread. `stop` is set before
/// `waiting` is read, and `waiting` before `stop` is read, so either the
/// command sees the stop or the signal thread sees the wait and cancels it.
struct State {
    stop: AtomicBool,
    waiting: AtomicBool,
    /// The connection a wait is on; replaced when the command reconnects.
    canceller: Mutex<Canceller>,
}

/// Signal handling for as long as this value lives.
pub struct Interrupt {
    state: Arc<State>,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Interrupt {
    /// Catch SIGINT and SIGTERM; a wait in progress is ended through
    /// `canceller`.
    pub fn install(canceller: Canceller) -> io::Result<Self> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let state = Arc::new(State {
            stop: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            canceller: Mutex::new(canceller),
        });
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            for signal in signals.forever() {
                if shared.stop.swap(true, SeqCst) {
                    // Second signal: behave as if it had not been caught.
                    let _ = signal_hook::low_level::emulate_default_handler(signal);
                }
                if shared.waiting.load(SeqCst) {
                    shared.canceller.lock().expect("not poisoned").cancel();
                }
            }
        });
        Ok(Self {
            state,
            handle,
            thread: Some(thread),
        })
    }

    /// Waits from now on are on the connection `canceller` ends.
    pub fn watch(&self, canceller: Canceller) {
        *self.state.canceller.lock().expect("not poisoned") = canceller;
    }

    /// Pause for `pause`; `false` if a stop was requested before or
    /// during it (which ends it within a tenth of a second).
    pub fn pause(&self, pause: Duration) -> bool {
        let until = Instant::now() + pause;
        while !self.requested() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        false
    }

    /// Whether a signal asked the command to stop.
    pub fn requested(&self) -> bool {
        self.state.stop.load(SeqCst)
    }

    /// Run `wait`, a request that may block until the server has something
    /// to say. `None` if a stop was requested before or during it, in
    /// which case the connection may have been shut down.
    pub fn during<T>(&self, wait: impl FnOnce() -> T) -> Option<T> {
        self.state.waiting.store(true, SeqCst);
        let result = (!self.requested()).then(wait);
        self.state.waiting.store(false, SeqCst);
        result.filter(|_| !self.requested())
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
