//! Frame codec: pure functions over byte slices. A frame is a 4-byte
//! big-endian length followed by that many payload bytes.

use thiserror::Error;

/// Bytes of the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// Why a buffer does not hold a usable frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The announced length exceeds the receiver's maximum; the stream
    /// cannot be resynchronised and must be closed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced payload length.
        len: usize,
        /// The receiver's limit.
        max: usize,
    },
}

/// Append one frame holding `payload` to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("frame payloads are far below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Decode the first frame in `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, or the payload and the
/// number of bytes the whole frame used. The length is checked against
/// `max` as soon as the prefix is complete, before the payload arrives.
pub fn decode_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(prefix) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let end = FRAME_HEADER_LEN + len;
    Ok(buf.get(FRAME_HEADER_LEN..end).map(|payload| (payload, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(payload, &mut out);
        out
    }

    #[test]
    fn decodes_a_whole_frame_and_reports_its_size() {
        let mut buf = frame(b"hello");
        buf.extend_from_slice(b"next");
        assert_eq!(decode_frame(&buf, 100), Ok(Some((&b"hello"[..], 9))));
    }

    #[test]
    fn truncated_prefix_or_payload_needs_more() {
        let buf = frame(b"hello");
        for cut in 0..buf.len() {
            assert_eq!(decode_frame(&buf[..cut], 100), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn oversized_length_is_refused_before_the_payload_arrives() {
        let buf = u32::MAX.to_be_bytes();
        assert_eq!(
            decode_frame(&buf, 1024),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: 1024
            })
        );
    }

    #[test]
    fn empty_payload_is_a_valid_frame() {
        assert_eq!(decode_frame(&frame(b""), 0), Ok(Some((&b""[..], 4))));
    }
}
