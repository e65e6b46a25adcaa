//! The media hot path per RTP packet, in process: parsing the header and
//! placing the payload into a recording buffer, in order and with
//! reordering. A call sends 50 packets a second, so 1 µs per packet is
//! 0.005 % of a core per call. The whole receive path (socket, wake-ups,
//! routing) is measured by `scripts/bench.sh`, in a process of its own.

use std::hint::black_box;

use callrec::media::rtp;
use callrec::recording::StreamBuffer;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const FRAME: usize = 160;

fn packets(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            let mut header = [0u8; 12];
            rtp::write_header(&mut header, n as u16, (n * FRAME) as u32, 0xCA11_0000);
            let mut packet = header.to_vec();
            packet.extend(std::iter::repeat_n((n % 256) as u8, FRAME));
            packet
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let packet = &packets(1)[0];
    let mut group = c.benchmark_group("rtp");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse", |b| b.iter(|| rtp::parse(black_box(packet)).unwrap()));
    group.finish();
}

/// Places one minute of audio (3000 packets) in `order`.
fn place_all(packets: &[Vec<u8>], order: &[usize]) -> StreamBuffer {
    let mut buffer = StreamBuffer::new(8000 * 3600);
    for &index in order {
        let packet = rtp::parse(&packets[index]).unwrap();
        buffer.place(packet.ssrc, packet.sequence, packet.timestamp, packet.payload, (index * FRAME) as u64);
    }
    buffer
}

fn place(c: &mut Criterion) {
    let packets = packets(3000);
    let in_order: Vec<usize> = (0..packets.len()).collect();
    // Every 20th packet arrives three packets late; every 50th twice.
    let mut reordered = Vec::with_capacity(packets.len() + 60);
    for index in 0..packets.len() {
        if index % 20 == 3 {
            reordered.push(index - 3);
        }
        if index % 20 != 0 {
            reordered.push(index);
        }
        if index % 50 == 0 {
            reordered.push(index);
        }
    }

    let mut group = c.benchmark_group("recording_minute");
    group.throughput(Throughput::Elements(packets.len() as u64));
    group.bench_function("parse_and_place_in_order", |b| {
        b.iter(|| place_all(black_box(&packets), &in_order).finish(8000 * 60))
    });
    group.bench_function("parse_and_place_reordered", |b| {
        b.iter(|| place_all(black_box(&packets), &reordered).finish(8000 * 60))
    });
    group.finish();
}

criterion_group!(benches, parse, place);
criterion_main!(benches);
