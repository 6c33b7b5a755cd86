//! A block device on a region of memory: on the MPS2 boards the 16 MiB PSRAM at `0x2100_0000`, which
//! QEMU fills with a FAT image (`-device loader,file=IMAGE,addr=0x21000000,force-raw=on`) and the
//! QEMU test reads back (`pmemsave`). A board with an SD card uses `embedded_sdmmc::SdCard` instead;
//! both implement the same trait.

use core::ptr::{read_volatile, write_volatile};

use embedded_sdmmc::{Block, BlockCount, BlockDevice, BlockIdx};

/// Where the MPS2 boards map their PSRAM.
pub const MPS2_PSRAM: usize = 0x2100_0000;

/// `blocks` blocks of 512 bytes from `base`.
pub struct MemDisk {
    base: usize,
    blocks: u32,
}

/// Block index out of range.
#[derive(Debug)]
pub struct OutOfRange;

impl core::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("block out of range")
    }
}

impl core::error::Error for OutOfRange {}

impl MemDisk {
    /// The disk at `base`.
    ///
    /// # Safety
    /// `blocks * 512` bytes from `base` must be memory that nothing else uses.
    pub const unsafe fn new(base: usize, blocks: u32) -> Self {
        Self { base, blocks }
    }

    fn block(&self, idx: u32) -> Result<usize, OutOfRange> {
        if idx < self.blocks {
            Ok(self.base + idx as usize * Block::LEN)
        } else {
            Err(OutOfRange)
        }
    }
}

impl BlockDevice for MemDisk {
    type Error = OutOfRange;

    fn read(&self, blocks: &mut [Block], start: BlockIdx) -> Result<(), OutOfRange> {
        for (i, b) in blocks.iter_mut().enumerate() {
            let at = self.block(start.0 + i as u32)? as *const u8;
            for (j, byte) in b.contents.iter_mut().enumerate() {
                // SAFETY: inside the region `new`'s contract gives this disk.
                *byte = unsafe { read_volatile(at.add(j)) };
            }
        }
        Ok(())
    }

    fn write(&self, blocks: &[Block], start: BlockIdx) -> Result<(), OutOfRange> {
        for (i, b) in blocks.iter().enumerate() {
            let at = self.block(start.0 + i as u32)? as *mut u8;
            for (j, byte) in b.contents.iter().enumerate() {
                // SAFETY: as in `read`.
                unsafe { write_volatile(at.add(j), *byte) };
            }
        }
        Ok(())
    }

    fn num_blocks(&self) -> Result<BlockCount, OutOfRange> {
        Ok(BlockCount(self.blocks))
    }
}
