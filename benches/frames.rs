//! Frame encode and decode: a `send` request carrying a sealed envelope of
//! typical (1 KiB) and maximal (1 MiB) size, through JSON and base64.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use msgr::wire::protocol::{Base64Bytes, Request, decode_frame};

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for (size, label) in [(1024, "1KiB"), (1024 * 1024, "1MiB")] {
        let request = Request::Send {
            recipient: "John".into(),
            envelope: Base64Bytes(vec![0xa5; size]),
        };
        let frame = request.to_frame();
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", label), &request, |b, request| {
            b.iter(|| request.to_frame())
        });
        group.bench_with_input(BenchmarkId::new("decode", label), &frame, |b, frame| {
            b.iter(|| {
                let (payload, _) = decode_frame(frame, usize::MAX).unwrap().unwrap();
                Request::from_payload(payload).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
