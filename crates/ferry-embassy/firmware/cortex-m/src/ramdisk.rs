//! A block device in RAM (for boards without an SD card here); an SD card on SPI is
//! `embedded_sdmmc::SdCard`, which implements the same trait.

use core::cell::RefCell;

use embedded_sdmmc::{Block, BlockCount, BlockDevice, BlockIdx};

/// `N` blocks of 512 bytes.
pub struct RamDisk<const N: usize>(pub RefCell<[Block; N]>);

/// Block index out of range.
#[derive(Debug)]
pub struct OutOfRange;

impl core::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("block out of range")
    }
}

impl core::error::Error for OutOfRange {}

impl<const N: usize> BlockDevice for &RamDisk<N> {
    type Error = OutOfRange;

    fn read(&self, blocks: &mut [Block], start: BlockIdx) -> Result<(), OutOfRange> {
        let disk = self.0.borrow();
        for (i, b) in blocks.iter_mut().enumerate() {
            *b = disk.get(start.0 as usize + i).ok_or(OutOfRange)?.clone();
        }
        Ok(())
    }

    fn write(&self, blocks: &[Block], start: BlockIdx) -> Result<(), OutOfRange> {
        let mut disk = self.0.borrow_mut();
        for (i, b) in blocks.iter().enumerate() {
            *disk.get_mut(start.0 as usize + i).ok_or(OutOfRange)? = b.clone();
        }
        Ok(())
    }

    fn num_blocks(&self) -> Result<BlockCount, OutOfRange> {
        Ok(BlockCount(N as u32))
    }
}
