//! The server spoken to frame by frame: the request flow, pipelining, and
//! the server run in-process with a clock the tests move; `msgr serve`
//! starting up (`startup`), and renewing its certificate on SIGHUP
//! (`reload`).

mod admin;
mod frames;
mod in_process;
mod pipelining;
mod reload;
mod startup;
mod systemd;
