//! Board support shared by the firmware binaries: a SysTick time driver for embassy-time, the global
//! heap, a RAM block device and a placeholder Ethernet link.
#![no_std]

extern crate alloc;

pub mod link;
pub mod ramdisk;
pub mod time;

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
