//! The server spoken to frame by frame: the request flow and pipelining.

mod frames;
mod pipelining;
