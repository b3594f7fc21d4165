//! Fuzz target: the frame decoder and the request/response parsers, as a
//! server and a client run them on bytes from the network.

#![no_main]

#[allow(dead_code)] // each target uses one of the harness functions
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::frame_request(data));
