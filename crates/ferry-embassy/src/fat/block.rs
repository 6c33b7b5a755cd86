//! A block device (an SD card) as the byte stream a FAT volume is read through.

use embedded_sdmmc::{Block, BlockDevice, BlockIdx};
use hadris_fat::sync::{Error, ErrorKind, IoResult, Read, Seek, SeekFrom, Write};

/// The error type of the stream traits.
type Kind = embedded_io::ErrorKind;

/// Presents an `embedded-sdmmc` [`BlockDevice`] (for example its `SdCard` on SPI) as a seekable byte
/// stream. Keeps one 512-byte block cached for reads; writes go through to the device at once (a
/// whole aligned block is written without reading it first), so nothing is lost on power failure
/// that the FAT layer believes written.
pub struct BlockIo<B: BlockDevice> {
    device: B,
    blocks: u64,
    pos: u64,
    cache: Block,
    cached: Option<u32>,
}

impl<B: BlockDevice> BlockIo<B> {
    /// Wraps `device`.
    ///
    /// # Errors
    /// The device's block count could not be read.
    pub fn new(device: B) -> Result<Self, B::Error> {
        let blocks = u64::from(device.num_blocks()?.0);
        Ok(Self {
            device,
            blocks,
            pos: 0,
            cache: Block::new(),
            cached: None,
        })
    }

    /// The block under the position, and the offset in it; `None` past the end.
    fn locate(&self) -> Option<(u32, usize)> {
        let idx = self.pos / Block::LEN_U32 as u64;
        (idx < self.blocks).then(|| (idx as u32, (self.pos % Block::LEN_U32 as u64) as usize))
    }

    fn load(&mut self, idx: u32) -> IoResult<(), Kind> {
        if self.cached != Some(idx) {
            self.cached = None;
            self.device
                .read(core::slice::from_mut(&mut self.cache), BlockIdx(idx))
                .map_err(|_| Error::from_kind(ErrorKind::Other))?;
            self.cached = Some(idx);
        }
        Ok(())
    }
}

impl<B: BlockDevice> Read for BlockIo<B> {
    type Error = Kind;

    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize, Kind> {
        let Some((idx, off)) = self.locate() else {
            return Ok(0);
        };
        self.load(idx)?;
        let n = buf.len().min(Block::LEN - off);
        buf[..n].copy_from_slice(&self.cache.contents[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<B: BlockDevice> Write for BlockIo<B> {
    type Error = Kind;

    fn write(&mut self, buf: &[u8]) -> IoResult<usize, Kind> {
        let Some((idx, off)) = self.locate() else {
            return Err(Error::from_kind(ErrorKind::WriteZero));
        };
        let n = buf.len().min(Block::LEN - off);
        if off == 0 && n == Block::LEN {
            self.cached = None;
            self.cache.contents.copy_from_slice(&buf[..n]);
        } else {
            self.load(idx)?;
            self.cached = None;
            self.cache.contents[off..off + n].copy_from_slice(&buf[..n]);
        }
        self.device
            .write(core::slice::from_ref(&self.cache), BlockIdx(idx))
            .map_err(|_| Error::from_kind(ErrorKind::Other))?;
        self.cached = Some(idx);
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> IoResult<(), Kind> {
        Ok(())
    }
}

impl<B: BlockDevice> Seek for BlockIo<B> {
    type Error = Kind;

    fn seek(&mut self, pos: SeekFrom) -> IoResult<u64, Kind> {
        let end = self.blocks * Block::LEN_U32 as u64;
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => end.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or(Error::from_kind(ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}
