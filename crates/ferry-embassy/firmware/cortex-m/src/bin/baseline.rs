//! Size baseline: the runtime, heap and panic handler the probes share, with a trivial use of the
//! allocator. `engine-probe` minus this is the engine's share of flash.
#![no_std]
#![no_main]

extern crate alloc;

use core::hint::black_box;

use ferry_firmware_cortex_m::init_heap;
use panic_halt as _;

#[cortex_m_rt::entry]
fn main() -> ! {
    init_heap::<{ 16 * 1024 }>();
    loop {
        let mut v = alloc::vec::Vec::new();
        v.push(black_box(1u8));
        black_box(&v);
    }
}
