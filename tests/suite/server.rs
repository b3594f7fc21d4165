//! The server spoken to frame by frame: the request flow, pipelining, and
//! the server run in-process with a clock the tests move; and `msgr serve`
//! starting up (`startup`).

mod frames;
mod in_process;
mod pipelining;
mod startup;
