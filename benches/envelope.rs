//! Envelope seal and open at 100 B, 10 KiB and 1 MiB bodies with 2048- and
//! 3072-bit identity keys. Sealing includes the sender's RSA signature,
//! which dominates at small sizes; opening only verifies it and does one
//! X25519 agreement.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use msgr::wire::crypto::PrivateKey;
use msgr::wire::crypto::agreement::AgreementSecret;
use msgr::wire::envelope::{self, Header, RecipientPrekey, RecipientPrekeys};
use msgr::wire::protocol::UserName;
use msgr::wire::signing::PrekeyKind;

const BODY_SIZES: [(usize, &str); 3] = [(100, "100B"), (10 * 1024, "10KiB"), (1024 * 1024, "1MiB")];

fn seal_and_open(c: &mut Criterion) {
    for bits in [2048, 3072] {
        let sender = PrivateKey::generate(bits).unwrap();
        let prekey = AgreementSecret::generate().unwrap();
        let one_time = AgreementSecret::generate().unwrap();
        let recipient_public = RecipientPrekeys {
            signed: RecipientPrekey {
                id: 1,
                public_key: prekey.public_key().unwrap(),
            },
            one_time: Some(RecipientPrekey {
                id: 1,
                public_key: one_time.public_key().unwrap(),
            }),
        };
        let sender_public = sender.public_key();
        let (alice, john): (UserName, UserName) =
            ("Alice".parse().unwrap(), "John".parse().unwrap());
        let mut group = c.benchmark_group(format!("envelope/rsa{bits}"));
        for (size, label) in BODY_SIZES {
            let body = vec![0x5a; size];
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new("seal", label), &body, |b, body| {
                b.iter(|| {
                    let header = Header::new(&alice, &john);
                    envelope::seal(&header, body, &sender, &recipient_public).unwrap()
                })
            });
            let sealed = envelope::seal(
                &Header::new(&alice, &john),
                &body,
                &sender,
                &recipient_public,
            )
            .unwrap();
            group.bench_with_input(BenchmarkId::new("open", label), &sealed, |b, sealed| {
                b.iter(|| {
                    envelope::parse(sealed)
                        .unwrap()
                        .open(&john, &sender_public, |kind, _| {
                            Some(match kind {
                                PrekeyKind::Signed => &prekey,
                                PrekeyKind::OneTime => &one_time,
                            })
                        })
                        .unwrap()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, seal_and_open);
criterion_main!(benches);
