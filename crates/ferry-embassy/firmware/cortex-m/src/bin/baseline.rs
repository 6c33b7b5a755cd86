//! Size baseline: what every firmware links whatever it runs, and the probes share: the runtime, the
//! heap, the panic handler, and the memory routines of the compiler's runtime (`memcpy`, `memmove`,
//! `memset`, `memcmp`: about 3 KiB of speed-optimised code that embassy-net, smoltcp and the FAT layer
//! call too). `engine-probe` minus this is the engine's share of flash; `.ci/embedded` also prints
//! the share with the memory routines counted.
#![no_std]
#![no_main]

extern crate alloc;

use core::hint::black_box;

use ferry_firmware_cortex_m::init_heap;
use panic_halt as _;

fn push(v: &mut alloc::vec::Vec<u8>) {
    v.push(black_box(1u8));
}

#[cortex_m_rt::entry]
fn main() -> ! {
    init_heap::<{ 16 * 1024 }>();
    static DATA: [u8; 64] = [1; 64];
    let mut a = *black_box(&DATA);
    let mut b = *black_box(&DATA);
    loop {
        // Push onto an empty vector: links the allocator and the growth path every user of Vec has.
        let mut v = alloc::vec::Vec::new();
        push(&mut v);
        black_box(&v);
        // Lengths the optimiser cannot see, so that the library routines are called.
        let n = black_box(32usize).min(32);
        a.copy_within(..n, black_box(1usize).min(32)); // memmove
        b[..n].copy_from_slice(&a[..n]); // memcpy
        let start = black_box(1usize).min(1);
        a[start..start + n].fill(black_box(7)); // memset
        black_box(a[..n] == b[..n]); // memcmp
        black_box((&a, &b));
    }
}
