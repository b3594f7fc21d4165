//! Announcements while the session waits at its prompt: a thread holds a
//! waiting `fetch` on the session's one connection (PROTOCOL §4.7),
//! repeated, and tells of each new message once, above the prompt —
//! sender and local time, never the body; nothing is acknowledged, so
//! `read` shows the messages as always. The thread only presents the
//! stored session token: it never logs in, so without a valid session it
//! does not watch. When a command is typed, [`Watch::stop`] wakes the
//! thread through a socket it polls together with the connection; the
//! thread sends a `fetch` that does not wait, which makes the server
//! answer the held one at once, reads both answers and hands the
//! connection back. Only that thread touches the connection meanwhile.

use std::collections::HashSet;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::Duration;

use rustyline::ExternalPrinter;

use crate::client::error::ClientResult;
use crate::client::keyring::SessionToken;
use crate::client::net::{Connection, unexpected};
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
    /// Watch for `user` on `connection`, presenting `token`.
    pub fn start(
        mut connection: Connection,
        user: UserName,
        token: SessionToken,
        mut announced: Announced,
        mut printer: Printer,
    ) -> std::io::Result<Self> {
        let (wake, woken) = UnixStream::pair()?;
        let thread = std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || {
                let watched = watch(
                    &mut connection,
                    &user,
                    &token,
                    &woken,
                    &mut announced,
                    &mut printer,
                );
                match watched {
                    Ok(()) => (Some(connection), announced),
                    Err(error) => {
                        tracing::debug!(%error, "watching the queue stopped");
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

/// Hold waiting fetches on `connection` until `woken` is readable, then
/// end the held one and read what is left.
fn watch(
    connection: &mut Connection,
    user: &UserName,
    token: &SessionToken,
    woken: &UnixStream,
    announced: &mut Announced,
    printer: &mut Printer,
) -> ClientResult<()> {
    if session::present(connection, user, token)?.is_none() {
        // Logged out meanwhile: nothing to watch, and no login.
        return Ok(());
    }
    let held = Duration::from_millis(MAX_WAIT_MS);
    loop {
        connection.write_request(&fetch(announced.after, MAX_WAIT_MS))?;
        match connection.read_response_held_unless(held, woken.as_fd())? {
            Some(response) => announced.tell(messages(response)?, printer),
            None => break,
        }
    }
    // The held fetch is answered as soon as this one arrives.
    connection.write_request(&fetch(announced.after, 0))?;
    let cut_short = messages(connection.read_response_held(held)?)?;
    announced.tell(cut_short, printer);
    announced.tell(messages(connection.read_response()?)?, printer);
    Ok(())
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
    /// Announce those of `messages` not announced before.
    fn tell(&mut self, messages: Vec<QueuedMessage>, printer: &mut Printer) {
        for message in messages {
            self.after = self.after.max(message.id);
            if self.ids.insert(message.id) {
                // A terminal that cannot show it loses only the news.
                let _ = printer.print(format!(
                    "New message from {} ({}); type read to show it\n",
                    printable(&message.sender),
                    local_time()
                ));
            }
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
