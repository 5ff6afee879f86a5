//! Cost of the batch AEAD (seal + open per record size) and of deriving a batch key.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use swarmmq_crypto::{BatchCipher, KeyRing, MasterKey};

fn seal_open(c: &mut Criterion) {
    let ring = KeyRing::single(MasterKey::generate().expect("rng"));
    let mut group = c.benchmark_group("batch_cipher_seal_open");
    for size in [1024usize, 64 * 1024] {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0x5au8; size];
        group.bench_function(format!("{size}B"), |b| {
            // A fresh writer per iteration batch keeps indexes unique as seal requires.
            let mut w = BatchCipher::for_write(&ring).expect("cipher");
            let r = BatchCipher::for_read(&ring, w.key_id(), w.salt()).expect("cipher");
            let mut r = r;
            let mut index: u32 = 0;
            b.iter(|| {
                if index == u32::MAX {
                    w = BatchCipher::for_write(&ring).expect("cipher");
                    r = BatchCipher::for_read(&ring, w.key_id(), w.salt()).expect("cipher");
                    index = 0;
                }
                let tag = w.seal(index, b"aad", &mut buf).expect("seal");
                r.open(index, b"aad", &mut buf, &tag).expect("open");
                index += 1;
                black_box(&buf);
            });
        });
    }
    group.finish();
}

fn derive(c: &mut Criterion) {
    let ring = KeyRing::single(MasterKey::generate().expect("rng"));
    c.bench_function("batch_cipher_for_write_hkdf", |b| {
        b.iter(|| black_box(BatchCipher::for_write(&ring).expect("cipher")));
    });
    let salt = [7u8; 16];
    c.bench_function("batch_cipher_for_read_hkdf", |b| {
        b.iter(|| black_box(BatchCipher::for_read(&ring, 1, &salt).expect("cipher")));
    });
}

criterion_group!(benches, seal_open, derive);
criterion_main!(benches);
