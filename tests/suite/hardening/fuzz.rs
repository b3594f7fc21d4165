//! The fuzz targets under `cargo test` (issue 3, item 3): the same harness
//! as `fuzz/fuzz_targets/*` (`fuzz/harness.rs`) replays every input saved
//! in `fuzz/regressions/<target>/` (crashes found by `cargo fuzz`, kept
//! minimized) and a seeded batch of random and mutated inputs, so the
//! decoders' properties are checked on every build without a nightly
//! toolchain. Long runs: see "Fuzzing" in the README.

#[path = "../../../fuzz/harness.rs"]
mod harness;

use std::path::Path;

use msgr::wire::envelope::{Header, seal};
use msgr::wire::protocol::{Base64Bytes, Request};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::name;

/// The inputs saved for `target`, if any.
fn saved_inputs(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect()
}

/// `count` variants of `seed`: bytes flipped, inserted, removed or cut
/// off, a few at a time.
fn mutations(seed: &[u8], count: usize, rng: &mut StdRng) -> Vec<Vec<u8>> {
    (0..count)
        .map(|_| {
            let mut bytes = seed.to_vec();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..=bytes.len());
                match rng.gen_range(0..4) {
                    0 if at < bytes.len() => bytes[at] ^= 1 << rng.gen_range(0..8),
                    1 => bytes.insert(at, rng.r#gen()),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            bytes
        })
        .collect()
}

fn random_bytes(count: usize, rng: &mut StdRng) -> Vec<Vec<u8>> {
    (0..count)
        .map(|_| (0..rng.gen_range(0..300)).map(|_| rng.r#gen()).collect())
        .collect()
}

#[test]
fn frame_decoding_survives_saved_random_and_mutated_inputs() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut stream = Vec::new();
    for request in [
        Request::Hello { version: 1 },
        Request::Login {
            user: "Alice".into(),
        },
        Request::Ack { ids: vec![1, 2] },
        Request::Send {
            recipient: "John".into(),
            envelope: Base64Bytes(vec![0, 255, 7]),
        },
        Request::Logout,
    ] {
        stream.extend(request.to_frame());
    }
    let mut inputs = saved_inputs("frame_request");
    inputs.extend(random_bytes(2000, &mut rng));
    inputs.extend(mutations(&stream, 3000, &mut rng));
    inputs.push(stream);
    for input in inputs {
        harness::frame_request(&input);
    }
}

#[test]
fn envelope_parsing_survives_saved_random_and_mutated_inputs() {
    let mut rng = StdRng::seed_from_u64(8);
    let alice = harness::alice();
    let valid = seal(
        &Header::new(&name("Alice"), &name("John")),
        b"fuzz me",
        alice,
        &harness::to_john(),
    )
    .unwrap();
    let mut inputs = saved_inputs("envelope");
    inputs.extend(random_bytes(1000, &mut rng));
    inputs.extend(mutations(&valid, 300, &mut rng));
    inputs.push(valid);
    for input in inputs {
        harness::envelope(&input);
    }
}
