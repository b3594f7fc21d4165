//! Announcements while the session waits at its prompt: a thread holds a
//! waiting `fetch` on the session's one connection (PROTOCOL §4.7),
//! repeated, and tells of each new message once, above the prompt —
//! sender (as the server says: `read` checks it) and local time, never
//! the body; nothing is acknowledged, so
//! `read` shows the messages as always. The thread only presents the
//! stored session token: it never logs in, so without a valid session it
//! does not watch. When a command is typed, [`Watch::stop`] wakes the
//! thread through a socket it polls together with the connection; the
//! thread sends a `fetch` that does not wait, which makes the server
//! answer the held one at once, reads both answers and hands the
//! connection back. Only that thread touches the connection meanwhile.
//! If the connection breaks while the prompt waits, the thread connects
//! again with the backoff of `read --follow` ([`Reconnect`]), telling so
//! above the prompt; a command typed meanwhile ends the attempts and
//! connects on its own.

use std::collections::HashSet;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use rustyline::ExternalPrinter;

use crate::client::error::{ClientError, ClientResult};
use crate::client::inbox::{Reconnect, Reconnecting, is_transient};
use crate::client::keyring::SessionToken;
use crate::client::net::{Connection, poll_timeout, seconds, unexpected};
use crate::client::session;
use crate::wire::protocol::{
    FETCH_PAGE, MAX_WAIT_MS, QueuedMessage, Request, Response, UserName, printable,
};

/// What the session has announced so far.
#[derive(Debug, Default)]
pub struct Announced {
    /// The highest message id seen: the next waiting `fetch` starts after it.
    after: u64,
    /// The ids announced, each once a session.
    ids: HashSet<u64>,
}

/// Where announcements are printed: above the prompt.
pub type Printer = Box<dyn ExternalPrinter + Send>;

/// A thread watching the queue on the session's connection.
pub struct Watch {
    wake: UnixStream,
    thread: JoinHandle<(Option<Connection>, Announced)>,
}

impl Watch {
    /// Watch for `user` on `connection`, presenting `token`, and connect
    /// again as `reconnect` says if the connection breaks (`quiet`: with
    /// no notice of the return, as `-q` asks).
    pub fn start(
        mut connection: Connection,
        user: UserName,
        token: SessionToken,
        mut announced: Announced,
        printer: Printer,
        reconnect: Reconnect,
        quiet: bool,
    ) -> std::io::Result<Self> {
        let (wake, woken) = UnixStream::pair()?;
        let mut printer = forwarded(printer)?;
        let thread = std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || {
                let mut watching = Watching {
                    user: &user,
                    token: &token,
                    woken: &woken,
                    announced: &mut announced,
                    printer: &mut printer,
                    quiet,
                };
                match watching.watch(&mut connection, &reconnect) {
                    Ok(true) => (Some(connection), announced),
                    Ok(false) => (None, announced),
                    Err(error) => {
                        // The next command connects again if need be.
                        let _ = printer.print(format!(
                            "msgr: no longer watching for new messages: {error}\n"
                        ));
                        (None, announced)
                    }
                }
            })?;
        Ok(Self { wake, thread })
    }

    /// Stop watching: the connection, ready for a command (`None` if it
    /// broke), and what was announced.
    pub fn stop(mut self) -> (Option<Connection>, Announced) {
        // If the thread has ended already, nobody reads this: no matter.
        let _ = self.wake.write_all(b"!");
        self.thread.join().unwrap_or_default()
    }
}

/// `printer` behind a thread of its own, so that printing never holds up
/// the watching thread: the line editor takes one message at a time while
/// its prompt shows, and none once a command was typed, so a print made
/// just then would wait until the next prompt — while the session waits
/// for the watching thread to hand back the connection.
fn forwarded(mut printer: Printer) -> std::io::Result<Printer> {
    let (sender, messages) = mpsc::channel::<String>();
    std::thread::Builder::new()
        .name("announce".into())
        .spawn(move || {
            // Ends once the watching thread, and so the sender, is gone.
            for message in messages {
                let _ = printer.print(message);
            }
        })?;
    Ok(Box::new(Forwarded(sender)))
}

/// The watching thread's end of [`forwarded`].
struct Forwarded(mpsc::Sender<String>);

impl ExternalPrinter for Forwarded {
    fn print(&mut self, message: String) -> rustyline::Result<()> {
        // The forwarding thread lives as long as a sender does.
        let _ = self.0.send(message);
        Ok(())
    }
}

/// What the watching thread works with.
struct Watching<'a> {
    user: &'a UserName,
    token: &'a SessionToken,
    /// Readable once a command is typed.
    woken: &'a UnixStream,
    announced: &'a mut Announced,
    printer: &'a mut Printer,
    /// No notice of a return (`-q`); the loss is a warning, shown anyway.
    quiet: bool,
}

impl Watching<'_> {
    /// Watch on `connection` until woken, connecting again if it breaks;
    /// `false` if it broke and no new one was made before the wake.
    fn watch(&mut self, connection: &mut Connection, reconnect: &Reconnect) -> ClientResult<bool> {
        loop {
            let error = match self.hold(connection) {
                Ok(()) => return Ok(true),
                Err(error) if is_transient(&error) => error,
                Err(error) => return Err(error),
            };
            let Some(mut again) = reconnect.connect_again(error, self)? else {
                return Ok(false);
            };
            again.max_envelope()?;
            *connection = again;
        }
    }

    /// Hold waiting fetches on `connection` until woken, then end the held
    /// one and read what is left.
    fn hold(&mut self, connection: &mut Connection) -> ClientResult<()> {
        if session::present(connection, self.user, self.token)?.is_none() {
            // Logged out meanwhile: nothing to watch, and no login.
            return Ok(());
        }
        let held = Duration::from_millis(MAX_WAIT_MS);
        let after = |watching: &Self| watching.announced.after;
        loop {
            connection.write_request(&fetch(after(self), MAX_WAIT_MS))?;
            match connection.read_response_held_unless(held, self.woken.as_fd())? {
                Some(response) => self.announced.tell(messages(response)?, self.printer),
                None => break,
            }
        }
        // The held fetch is answered as soon as this one arrives.
        connection.write_request(&fetch(after(self), 0))?;
        let cut_short = messages(connection.read_response_held(held)?)?;
        self.announced.tell(cut_short, self.printer);
        self.announced
            .tell(messages(connection.read_response()?)?, self.printer);
        Ok(())
    }
}

impl Reconnecting for Watching<'_> {
    fn connection_lost(&mut self, error: &ClientError, within: Duration) {
        let _ = self.printer.print(format!(
            "msgr: lost the connection ({error}); trying to connect again for up to {}\n",
            seconds(within)
        ));
    }

    fn reconnected(&mut self, server: &str) {
        if self.quiet {
            return;
        }
        let _ = self
            .printer
            .print(format!("msgr: connected again to {server}\n"));
    }

    /// A typed command ends the pause, and the attempts.
    fn pause(&mut self, pause: Duration) -> bool {
        !woken_within(self.woken, pause)
    }
}

/// Whether `woken` becomes readable within `pause`.
fn woken_within(woken: &UnixStream, pause: Duration) -> bool {
    let mut fds = [PollFd::new(woken, PollFlags::IN)];
    let until = std::time::Instant::now() + pause;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match poll(&mut fds, Some(&poll_timeout(left))) {
            Err(Errno::INTR) => {}
            Err(_) => return true,
            Ok(0) => return false,
            Ok(_) => return true,
        }
    }
}

/// A `fetch` of the messages after `after`, waiting up to `wait_ms`.
fn fetch(after: u64, wait_ms: u64) -> Request {
    Request::Fetch {
        after,
        limit: FETCH_PAGE,
        wait_ms,
    }
}

/// The messages of a `fetch` answer.
fn messages(response: Response) -> ClientResult<Vec<QueuedMessage>> {
    match response {
        Response::Messages { messages } => Ok(messages),
        other => Err(unexpected(&other).into()),
    }
}

impl Announced {
    /// Announce those of `messages` not announced before, in one print
    /// (the line editor takes one at a time).
    fn tell(&mut self, messages: Vec<QueuedMessage>, printer: &mut Printer) {
        let mut news = String::new();
        for message in messages {
            self.after = self.after.max(message.id);
            if self.ids.insert(message.id) {
                news.push_str(&format!(
                    "New message from {} ({}, as the server says; read shows and checks it)\n",
                    printable(&message.sender),
                    local_time()
                ));
            }
        }
        if !news.is_empty() {
            // A terminal that cannot show it loses only the news.
            let _ = printer.print(news);
        }
    }
}

/// The local time of day now, as `14:02`.
fn local_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let now = libc::time_t::try_from(now).unwrap_or(libc::time_t::MAX);
    // SAFETY: `tm` is plain data that localtime_r fills in; both pointers
    // are valid for the call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return "now".into();
        }
        tm
    };
    format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::Base64Bytes;

    /// What was printed above the prompt.
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl ExternalPrinter for Captured {
        fn print(&mut self, message: String) -> rustyline::Result<()> {
            self.0.lock().unwrap().push(message);
            Ok(())
        }
    }

    fn queued(id: u64, sender: &str) -> QueuedMessage {
        QueuedMessage {
            id,
            sender: sender.into(),
            envelope: Base64Bytes(b"sealed body".to_vec()),
        }
    }

    #[test]
    fn a_server_chosen_sender_is_announced_once_printable_and_never_with_the_body() {
        let printed = std::sync::Arc::default();
        let mut printer: Printer = Box::new(Captured(std::sync::Arc::clone(&printed)));
        let mut announced = Announced::default();
        // A hostile server's sender: terminal escapes to repaint the line.
        let messages = vec![queued(7, "Bank\u{1b}[2K\rmsgr> "), queued(9, "John")];
        announced.tell(messages, &mut printer);
        announced.tell(vec![queued(9, "John")], &mut printer);
        let printed = printed.lock().unwrap();
        assert_eq!(printed.len(), 1, "one print, and nothing told twice");
        let news = &printed[0];
        assert!(!news.contains('\u{1b}') && !news.contains('\r'), "{news:?}");
        assert!(
            news.starts_with("New message from Bank^[[2K^Mmsgr>  ("),
            "{news:?}"
        );
        assert!(!news.contains("sealed"), "{news:?}");
        assert_eq!(news.matches("as the server says").count(), 2);
        assert_eq!(announced.after, 9);
    }
}
