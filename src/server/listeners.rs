//! The sockets the accept loop takes connections from: one, or one for
//! each address of a host name, accepted from in turn so that a busy
//! socket cannot starve the others.

use std::net::SocketAddr;
use std::task::Poll;

use tokio::net::{TcpListener, TcpStream};

/// The sockets a server accepts connections on: one, or one for each
/// address of a host name (such as 127.0.0.1 and ::1 for localhost).
pub struct Listeners {
    /// Never empty.
    sockets: Vec<TcpListener>,
    /// Where the next [`Listeners::accept`] starts looking, so that a busy
    /// socket cannot starve the others.
    next: usize,
}

impl Listeners {
    /// Accept on all of `sockets`; `None` if there are none.
    pub fn new(sockets: Vec<TcpListener>) -> Option<Self> {
        (!sockets.is_empty()).then_some(Self { sockets, next: 0 })
    }

    /// The addresses listened on, in the order given.
    pub fn local_addrs(&self) -> std::io::Result<Vec<SocketAddr>> {
        self.sockets.iter().map(TcpListener::local_addr).collect()
    }

    /// The next connection on any of the sockets.
    pub(super) async fn accept(&mut self) -> std::io::Result<(TcpStream, SocketAddr)> {
        std::future::poll_fn(|cx| {
            let count = self.sockets.len();
            for offset in 0..count {
                let index = (self.next + offset) % count;
                if let Poll::Ready(accepted) = self.sockets[index].poll_accept(cx) {
                    self.next = (index + 1) % count;
                    return Poll::Ready(accepted);
                }
            }
            Poll::Pending
        })
        .await
    }
}

impl From<TcpListener> for Listeners {
    fn from(socket: TcpListener) -> Self {
        Self {
            sockets: vec![socket],
            next: 0,
        }
    }
}
