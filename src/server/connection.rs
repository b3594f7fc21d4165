//! One framed connection: owns the byte stream, its read buffer and the
//! responses not yet written, and moves whole frames in and out. The frame
//! codec itself is the pure [`crate::wire::protocol::decode_frame`]; this type
//! only feeds it bytes, so a length prefix above the limit is refused
//! before any buffer grows for it. A frame larger than
//! [`UNRESERVED_FRAME`] is read only once the server-wide budget of bytes
//! grants its size; the grant goes with the request to whoever handles
//! it, so that the budget bounds every large frame being read or handled.

use std::sync::Arc;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::wire::protocol::{FrameError, Request, Response, decode_frame};

/// Bytes requested from the stream per read.
const READ_CHUNK: usize = 16 * 1024;

/// Frames up to this size are read without a grant from the budget: every
/// connection may hold one (the most a connection not logged in may send).
pub const UNRESERVED_FRAME: usize = crate::server::limits::ANONYMOUS_MAX_FRAME;

/// A request as read off the wire: parsed, or the reason it did not parse.
pub type Incoming = Result<Request, serde_json::Error>;

/// Why a connection ended abnormally.
#[derive(Debug, Error)]
pub enum ConnectionError {
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    /// The peer did not finish the TLS handshake and `hello` in time.
    #[error("TLS handshake and hello not completed within the handshake timeout")]
    HandshakeTimeout,
    /// Newer connections evicted this one before it was greeted.
    #[error("dropped before its hello: too many connections waiting to be admitted")]
    Evicted,
    /// The peer neither sent nor received anything for too long.
    #[error("peer stalled for longer than the idle timeout")]
    Timeout,
    /// The stream ended inside a frame.
    #[error("peer closed the connection in the middle of a frame")]
    Truncated,
    /// The peer announced a frame above the limit; the stream cannot be
    /// resynchronised.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A stream that carries length-prefixed JSON frames.
pub struct Connection<S> {
    stream: S,
    /// Received bytes not yet consumed as frames.
    buffer: Vec<u8>,
    /// Response frames queued for the next flush.
    outgoing: Vec<u8>,
    /// Largest payload accepted.
    max_frame: usize,
    /// The server-wide budget of bytes for large frames.
    budget: Option<Arc<Semaphore>>,
    /// The grant for the large frame being read.
    reading: Option<OwnedSemaphorePermit>,
    /// The grant for the frame returned last, until taken or the next read.
    returned: Option<OwnedSemaphorePermit>,
    /// A read error met by [`Connection::arrival`], for the next
    /// [`Connection::read_request`] to report.
    failed: Option<std::io::Error>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wrap `stream`, refusing frames with payloads above `max_frame` bytes.
    pub fn new(stream: S, max_frame: usize) -> Self {
        Self {
            stream,
            buffer: Vec::with_capacity(READ_CHUNK),
            outgoing: Vec::new(),
            max_frame,
            budget: None,
            reading: None,
            returned: None,
            failed: None,
        }
    }

    /// Read frames larger than [`UNRESERVED_FRAME`] only once `budget`
    /// grants their size.
    pub fn with_budget(mut self, budget: Arc<Semaphore>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The budget's grant for the request returned last, if its frame
    /// needed one: holding it keeps the bytes counted (a `send` in flight).
    pub fn take_grant(&mut self) -> Option<OwnedSemaphorePermit> {
        self.returned.take()
    }

    /// Refuse frames with payloads above `max_frame` bytes from now on.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// The next request, or `None` when the peer closed the stream between
    /// frames.
    ///
    /// Cancel-safe: bytes are only appended to the buffer (by a cancel-safe
    /// `read_buf`), and a frame leaves it only when its request is
    /// returned, so a read dropped part-way loses nothing.
    pub async fn read_request(&mut self) -> Result<Option<Incoming>, ConnectionError> {
        self.returned = None;
        loop {
            if let Some((payload, used)) = decode_frame(&self.buffer, self.max_frame)? {
                let request = Request::from_payload(payload);
                self.buffer.drain(..used);
                if self.buffer.capacity() > UNRESERVED_FRAME + READ_CHUNK {
                    self.buffer.shrink_to(READ_CHUNK.max(self.buffer.len()));
                }
                self.returned = self.reading.take();
                return Ok(Some(request));
            }
            // A large frame announced: wait for the budget before reading
            // it. Cancel-safe: a grant is kept once given.
            if let (Some(budget), None, Some(length)) =
                (&self.budget, &self.reading, announced(&self.buffer))
                && length > UNRESERVED_FRAME
            {
                let grant = Arc::clone(budget)
                    .acquire_many_owned(u32::try_from(length).unwrap_or(u32::MAX))
                    .await
                    .expect("the budget is never closed");
                self.reading = Some(grant);
            }
            self.buffer.reserve(READ_CHUNK);
            let read = match self.failed.take() {
                Some(error) => Err(error),
                None => self.stream.read_buf(&mut self.buffer).await,
            };
            match read {
                Ok(0) if self.buffer.is_empty() => return Ok(None),
                Ok(0) => return Err(ConnectionError::Truncated),
                Ok(_) => {}
                // A TLS peer that leaves without close_notify, between frames.
                Err(e)
                    if e.kind() == std::io::ErrorKind::UnexpectedEof && self.buffer.is_empty() =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Return once bytes of a next request, or the end of the stream, have
    /// arrived, without taking a request: what ends a waiting `fetch`
    /// early. At once if bytes are already buffered (the peer pipelined).
    /// Only one read's worth is taken (a large frame still waits for the
    /// budget in [`Connection::read_request`]); a read error is kept for
    /// `read_request` to report.
    ///
    /// Cancel-safe, as `read_request` is.
    pub async fn arrival(&mut self) {
        if !self.buffer.is_empty() || self.failed.is_some() {
            return;
        }
        self.buffer.reserve(READ_CHUNK);
        // The end of the stream (`Ok(0)`) is met again, and reported, by
        // `read_request`.
        if let Err(error) = self.stream.read_buf(&mut self.buffer).await {
            self.failed = Some(error);
        }
    }

    /// Send one response frame (and any queued before it).
    pub async fn write_response(&mut self, response: &Response) -> std::io::Result<()> {
        self.queue_response(response);
        self.flush().await
    }

    /// Queue one response frame for the next [`Connection::flush`], so
    /// that responses ready together go out in one write.
    pub fn queue_response(&mut self, response: &Response) {
        let frame = response.to_frame();
        if self.outgoing.is_empty() {
            self.outgoing = frame;
        } else {
            self.outgoing.extend_from_slice(&frame);
        }
    }

    /// Write the queued response frames and flush the stream.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        let frames = std::mem::take(&mut self.outgoing);
        self.stream.write_all(&frames).await?;
        self.stream.flush().await
    }

    /// Close the sending side (TLS close_notify), then read and discard
    /// until the peer closes too: closing a socket with bytes unread makes
    /// the kernel reset the connection, destroying responses still on their
    /// way to a peer that pipelined more requests. The caller bounds the
    /// wait; errors are moot by now.
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
        let mut discarded = vec![0; READ_CHUNK];
        while let Ok(1..) = self.stream.read(&mut discarded).await {}
    }
}

/// The payload length a buffer's frame announces, once its prefix is in.
fn announced(buffer: &[u8]) -> Option<usize> {
    let prefix: [u8; 4] = buffer.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(prefix) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::ErrorCode;

    fn pair(max_frame: usize) -> (Connection<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (server, client) = tokio::io::duplex(64);
        (Connection::new(server, max_frame), client)
    }

    #[tokio::test]
    async fn reads_frames_split_across_small_writes() {
        let (mut connection, mut client) = pair(1024);
        let mut frames = Request::Login { user: "a".into() }.to_frame();
        frames.extend(Request::Ack { ids: vec![1, 2] }.to_frame());
        frames.extend(b"\0\0\0\x02{}");
        tokio::spawn(async move {
            for chunk in frames.chunks(3) {
                client.write_all(chunk).await.unwrap();
            }
        });
        let first = connection.read_request().await.unwrap().unwrap().unwrap();
        assert_eq!(first, Request::Login { user: "a".into() });
        let second = connection.read_request().await.unwrap().unwrap().unwrap();
        assert_eq!(second, Request::Ack { ids: vec![1, 2] });
        assert!(connection.read_request().await.unwrap().unwrap().is_err());
        assert!(connection.read_request().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_length_fails_before_the_payload() {
        let (mut connection, mut client) = pair(1024);
        client.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(matches!(
            connection.read_request().await,
            Err(ConnectionError::Frame(FrameError::TooLarge { .. }))
        ));
    }

    #[tokio::test]
    async fn the_buffer_grows_with_bytes_received_not_with_the_announced_length() {
        let (mut connection, mut client) = pair(1 << 30);
        client.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
        client.write_all(b"{\"type\":").await.unwrap();
        drop(client);
        assert!(matches!(
            connection.read_request().await,
            Err(ConnectionError::Truncated)
        ));
        assert!(connection.buffer.capacity() <= 4 * READ_CHUNK);
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_an_error() {
        let (mut connection, mut client) = pair(1024);
        client.write_all(b"\0\0\0\x09{").await.unwrap();
        drop(client);
        assert!(matches!(
            connection.read_request().await,
            Err(ConnectionError::Truncated)
        ));
    }

    #[tokio::test]
    async fn a_cancelled_read_loses_nothing() {
        let (mut connection, mut client) = pair(1024);
        let frame = Request::Login { user: "a".into() }.to_frame();
        client.write_all(&frame[..6]).await.unwrap();
        let cancelled = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            connection.read_request(),
        );
        assert!(cancelled.await.is_err(), "half a frame is not a request");
        client.write_all(&frame[6..]).await.unwrap();
        let request = connection.read_request().await.unwrap().unwrap().unwrap();
        assert_eq!(request, Request::Login { user: "a".into() });
    }

    #[tokio::test]
    async fn an_arrival_is_seen_without_taking_the_request() {
        let (mut connection, mut client) = pair(1024);
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(20), connection.arrival());
        assert!(waiting.await.is_err(), "nothing has arrived");
        let frame = Request::Login { user: "a".into() }.to_frame();
        client.write_all(&frame[..3]).await.unwrap();
        connection.arrival().await;
        connection.arrival().await;
        client.write_all(&frame[3..]).await.unwrap();
        let request = connection.read_request().await.unwrap().unwrap().unwrap();
        assert_eq!(request, Request::Login { user: "a".into() });
        drop(client);
        connection.arrival().await;
        assert!(connection.read_request().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn responses_are_framed_in_order() {
        let (mut connection, mut client) = pair(1024);
        let first = Response::error(ErrorCode::Internal, "x");
        let second = Response::Sent { id: 7 };
        let mut expected = first.to_frame();
        expected.extend(second.to_frame());
        let mut frames = vec![0; expected.len()];
        let reader = tokio::spawn(async move {
            client.read_exact(&mut frames).await.unwrap();
            frames
        });
        connection.queue_response(&first);
        connection.write_response(&second).await.unwrap();
        assert_eq!(reader.await.unwrap(), expected);
    }
}
