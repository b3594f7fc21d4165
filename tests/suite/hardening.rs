//! What hostile or unlucky peers cannot do: authentication edges,
//! concurrency, crashes, fuzzed input, hostile frames, limits and slow
//! clients.

mod auth;
mod concurrency;
mod crash;
mod fuzz;
mod hostile;
mod limits;
mod slow_clients;
