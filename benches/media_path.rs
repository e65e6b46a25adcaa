//! The media hot path per RTP packet: parsing the header and placing the
//! payload into a recording buffer, in order and with reordering; and the
//! whole receive path over loopback UDP (sender included). A call sends 50
//! packets a second, so 1 µs per packet is 0.005 % of a core per call.

use std::hint::black_box;

use std::sync::Arc;
use std::time::Instant;

use callrec::media::{bind, rtp};
use callrec::metrics::Metrics;
use callrec::recording::StreamBuffer;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use uuid::Uuid;

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

/// One minute of one call's RTP sent over loopback into the real media task,
/// then collected: socket reads, routing, parsing and placement together.
fn receive(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let packets = packets(3000);
    let mut group = c.benchmark_group("udp_receive_minute");
    group.throughput(Throughput::Elements(packets.len() as u64));
    group.sample_size(20);
    group.bench_function("send_receive_place_take", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let metrics = Arc::new(Metrics::default());
                let (events, mut started) = tokio::sync::mpsc::unbounded_channel();
                let (media, receiver) = bind(
                    "127.0.0.1:0".parse().unwrap(),
                    8000 * 3600,
                    metrics.clone(),
                    callrec::memory::AudioMemory::new(u64::MAX),
                    events,
                )
                .unwrap();
                tokio::spawn(receiver.run());
                let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let mut sent = 0;
                let begin = Instant::now();
                for _ in 0..iterations {
                    let recording = Uuid::new_v4();
                    media.listen(recording, 0, 1, sender.local_addr().unwrap());
                    tokio::task::yield_now().await;
                    // A second of audio at a time, so the kernel's default
                    // receive buffer never overflows.
                    for burst in packets.chunks(50) {
                        for packet in burst {
                            sender.send_to(packet, media.local_addr).unwrap();
                        }
                        sent += burst.len() as u64;
                        // (A packet read before the listen command counts as unknown.)
                        while metrics.rtp_packets.get() + metrics.rtp_unknown_source.get() < sent {
                            tokio::task::yield_now().await;
                        }
                    }
                    let _ = started.recv().await;
                    black_box(media.take(recording, 8000 * 60).await.unwrap());
                }
                begin.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, parse, place, receive);
criterion_main!(benches);
