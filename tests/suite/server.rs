//! The server spoken to frame by frame: the request flow, pipelining, and
//! the server run in-process with a clock the tests move; `msgr serve`
//! starting up (`startup`), renewing its certificate on SIGHUP
//! (`reload`), and serving metrics and its health (`metrics`); several
//! servers on one PostgreSQL database (`several`), and a data directory
//! moved into one (`migrate`).

mod admin;
mod frames;
mod in_process;
mod metrics;
mod migrate;
mod pipelining;
mod reload;
mod several;
mod startup;
mod systemd;
