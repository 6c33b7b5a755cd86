//! Board support for the MPS2 AN386 (Cortex-M4), as real boards and QEMU's `mps2-an386` have it,
//! shared by the firmware binaries: a SysTick time driver for embassy-time, the global heap, the
//! LAN9118 Ethernet controller as an embassy-net driver, UART0 for messages, and a block device on
//! the board's PSRAM.
#![no_std]

extern crate alloc;

pub mod lan9118;
pub mod memdisk;
pub mod time;
pub mod uart;

use embedded_alloc::LlffHeap;

#[global_allocator]
static HEAP: LlffHeap = LlffHeap::empty();

/// Gives the allocator `N` bytes of static memory. Call once, first thing in `main`.
pub fn init_heap<const N: usize>() {
    use core::mem::MaybeUninit;
    static mut MEMORY: [MaybeUninit<u8>; 64 * 1024] = [MaybeUninit::uninit(); 64 * 1024];
    let size = N.min(64 * 1024);
    // SAFETY: called once before any allocation; MEMORY is used by nothing else.
    unsafe { HEAP.init(core::ptr::addr_of_mut!(MEMORY) as usize, size) }
}

/// Bytes of heap in use (for the RAM figures).
pub fn heap_used() -> usize {
    HEAP.used()
}
