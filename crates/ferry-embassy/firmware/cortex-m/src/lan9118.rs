//! An embassy-net driver for the SMSC LAN9118 / LAN9220 Ethernet controller of the MPS2 boards
//! (AN385/AN386: registers at `0x4020_0000`, interrupt 13), as real boards have it and as QEMU's
//! `mps2-an386` emulates it.
//!
//! The controller has no DMA: frames move through memory-mapped FIFOs, one 32-bit word at a time.
//! Receiving pops a status word (length, errors) and then the frame's words; sending pushes two
//! command words (length, first and last segment) and then the frame's words. The receive-status
//! interrupt (any frame waiting) wakes the network stack; nothing is polled in a loop.
//!
//! Only registers the datasheet documents and QEMU's model implements are touched (the model stops
//! the emulator on any other).

use core::cell::RefCell;
use core::ptr::{read_volatile, write_volatile};
use core::task::{Context, Waker};

use cortex_m::interrupt::InterruptNumber;
use critical_section::Mutex;
use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};

/// Where the MPS2 boards map the controller.
pub const MPS2_BASE: usize = 0x4020_0000;
/// The controller's interrupt on the MPS2 AN385/AN386 images.
pub const MPS2_IRQ: u16 = 13;

// Register offsets.
const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const TX_STATUS_FIFO: usize = 0x48;
const IRQ_CFG: usize = 0x54;
const INT_STS: usize = 0x58;
const INT_EN: usize = 0x5c;
const BYTE_TEST: usize = 0x64;
const FIFO_INT: usize = 0x68;
const RX_CFG: usize = 0x6c;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7c;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const MAC_CSR_CMD: usize = 0xa4;
const MAC_CSR_DATA: usize = 0xa8;

// MAC registers (through MAC_CSR_CMD/DATA).
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MAC_MII_ACC: u32 = 6;
const MAC_MII_DATA: u32 = 7;

const BYTE_TEST_VALUE: u32 = 0x8765_4321;
const HW_CFG_SRST: u32 = 1;
const PMT_CTRL_READY: u32 = 1;
const MAC_CSR_BUSY: u32 = 1 << 31;
const MAC_CSR_READ: u32 = 1 << 30;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_RXEN: u32 = 1 << 2;
const MII_BUSY: u32 = 1;
const PHY_ADDRESS: u32 = 1;
const PHY_BASIC_STATUS: u32 = 1;
const PHY_LINK_UP: u32 = 1 << 2;
const TX_CFG_TX_ON: u32 = 1 << 1;
/// Let the transmit status FIFO overrun: statuses are read but not needed.
const TX_CFG_TXSAO: u32 = 1 << 2;
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;
/// Receive status: error summary.
const RX_STS_ERROR: u32 = 1 << 15;
/// Interrupt: the receive status FIFO holds more than `FIFO_INT`'s level (0: any frame).
const INT_RSFL: u32 = 1 << 3;
/// IRQ_CFG: interrupt output enabled, active high, push-pull.
const IRQ_CFG_ENABLED: u32 = (1 << 8) | (1 << 4) | 1;

/// Largest Ethernet frame handled (without the FCS).
const MTU: usize = 1514;
/// How long register handshakes may take before the controller counts as absent.
const SPINS: u32 = 100_000;

/// The task waiting for frames; woken by the controller's interrupt.
static RX_WAKER: Mutex<RefCell<Option<Waker>>> = Mutex::new(RefCell::new(None));

/// The interrupt number, for the NVIC.
#[derive(Clone, Copy)]
pub struct Irq(pub u16);

// SAFETY: a number the MPS2 images assign to a device interrupt.
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

/// The controller's register block.
struct Regs {
    base: usize,
}

/// The controller at one base address.
pub struct Lan9118 {
    regs: Regs,
    mac: [u8; 6],
    rx: [u8; MTU + 8],
    tx: [u8; MTU],
}

impl Lan9118 {
    /// Resets and starts the controller at `base`; `None` if none answers there.
    ///
    /// # Safety
    /// `base` must be the address of a LAN9118-compatible controller that nothing else uses.
    pub unsafe fn new(base: usize) -> Option<Self> {
        let regs = Regs { base };
        if regs.read(BYTE_TEST) != BYTE_TEST_VALUE {
            return None;
        }
        regs.write(HW_CFG, HW_CFG_SRST);
        regs.spin_until(|r| r.read(HW_CFG) & HW_CFG_SRST == 0)?;
        regs.spin_until(|r| r.read(PMT_CTRL) & PMT_CTRL_READY != 0)?;
        // The MAC address the EEPROM (or QEMU's -nic macaddr) loaded.
        let [a, b, c, d] = regs.mac_read(MAC_ADDRL)?.to_le_bytes();
        let [e, f, _, _] = regs.mac_read(MAC_ADDRH)?.to_le_bytes();
        // Frames for this address and broadcast (no promiscuous mode).
        regs.mac_write(MAC_CR, MAC_CR_TXEN | MAC_CR_RXEN)?;
        regs.write(TX_CFG, TX_CFG_TX_ON | TX_CFG_TXSAO);
        regs.write(RX_CFG, 0);
        regs.write(FIFO_INT, 0);
        regs.write(INT_STS, u32::MAX);
        regs.write(INT_EN, INT_RSFL);
        regs.write(IRQ_CFG, IRQ_CFG_ENABLED);
        Some(Self {
            regs,
            mac: [a, b, c, d, e, f],
            rx: [0; MTU + 8],
            tx: [0; MTU],
        })
    }

    /// The interrupt handler's work: acknowledges the controller and wakes the waiting task.
    pub fn on_interrupt(base: usize) {
        Regs { base }.write(INT_STS, u32::MAX);
        critical_section::with(|cs| {
            if let Some(waker) = RX_WAKER.borrow(cs).borrow_mut().take() {
                waker.wake();
            }
        });
    }
}

impl Regs {
    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `Lan9118::new`'s contract: `base` is the controller's register block.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as for `read`.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn spin_until(&self, done: impl Fn(&Self) -> bool) -> Option<()> {
        (0..SPINS).any(|_| done(self)).then_some(())
    }

    fn mac_read(&self, reg: u32) -> Option<u32> {
        self.spin_until(|r| r.read(MAC_CSR_CMD) & MAC_CSR_BUSY == 0)?;
        self.write(MAC_CSR_CMD, MAC_CSR_BUSY | MAC_CSR_READ | reg);
        self.spin_until(|r| r.read(MAC_CSR_CMD) & MAC_CSR_BUSY == 0)?;
        Some(self.read(MAC_CSR_DATA))
    }

    fn mac_write(&self, reg: u32, value: u32) -> Option<()> {
        self.spin_until(|r| r.read(MAC_CSR_CMD) & MAC_CSR_BUSY == 0)?;
        self.write(MAC_CSR_DATA, value);
        self.write(MAC_CSR_CMD, MAC_CSR_BUSY | reg);
        self.spin_until(|r| r.read(MAC_CSR_CMD) & MAC_CSR_BUSY == 0)
    }

    fn phy_read(&self, reg: u32) -> Option<u32> {
        self.mac_write(MAC_MII_ACC, (PHY_ADDRESS << 11) | (reg << 6) | MII_BUSY)?;
        self.spin_until(|r| r.mac_read(MAC_MII_ACC).is_some_and(|v| v & MII_BUSY == 0))?;
        self.mac_read(MAC_MII_DATA)
    }

    /// Pops one received frame into `buf`; its length, or `None` when none is waiting (or it was
    /// bad and dropped).
    fn pop_frame(&self, buf: &mut [u8; MTU + 8]) -> Option<usize> {
        let waiting = (self.read(RX_FIFO_INF) >> 16) & 0xff;
        if waiting == 0 {
            return None;
        }
        let status = self.read(RX_STATUS_FIFO);
        // The length counts the FCS; the FIFO holds whole words.
        let length = ((status >> 16) & 0x3fff) as usize;
        let keep = status & RX_STS_ERROR == 0 && (14 + 4..=MTU + 4).contains(&length);
        for i in 0..length.div_ceil(4) {
            let word = self.read(RX_DATA_FIFO).to_le_bytes();
            if keep {
                buf[4 * i..4 * i + 4].copy_from_slice(&word);
            }
        }
        keep.then_some(length - 4)
    }

    /// Sends `frame`.
    fn push_frame(&self, frame: &[u8]) {
        let len = frame.len() as u32;
        // Room for the frame and its two command words (the FIFO drains as the MAC sends).
        let _ = self.spin_until(|r| r.read(TX_FIFO_INF) & 0xffff >= len + 8);
        self.write(TX_DATA_FIFO, TX_CMD_A_FIRST | TX_CMD_A_LAST | len);
        // Packet tag (the length: unused) and length.
        self.write(TX_DATA_FIFO, len << 16 | len);
        for chunk in frame.chunks(4) {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write(TX_DATA_FIFO, u32::from_le_bytes(word));
        }
        // Statuses are not needed (TXSAO); read them so that the FIFO does not fill.
        for _ in 0..(self.read(TX_FIFO_INF) >> 16) & 0xff {
            let _ = self.read(TX_STATUS_FIFO);
        }
    }
}

/// A received frame, already read out of the controller.
pub struct Rx<'a>(&'a mut [u8]);

/// Room for one frame to send.
pub struct Tx<'a> {
    regs: &'a Regs,
    buf: &'a mut [u8; MTU],
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let frame = &mut self.buf[..len.min(MTU)];
        let result = f(frame);
        self.regs.push_frame(frame);
        result
    }
}

impl Driver for Lan9118 {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, cx: &mut Context) -> Option<(Rx<'_>, Tx<'_>)> {
        // Registered before looking, so that a frame arriving in between wakes the task.
        critical_section::with(|cs| {
            RX_WAKER.borrow(cs).replace(Some(cx.waker().clone()));
        });
        let len = self.regs.pop_frame(&mut self.rx)?;
        let Self { regs, rx, tx, .. } = self;
        Some((Rx(&mut rx[..len]), Tx { regs, buf: tx }))
    }

    fn transmit(&mut self, _cx: &mut Context) -> Option<Tx<'_>> {
        Some(Tx {
            regs: &self.regs,
            buf: &mut self.tx,
        })
    }

    fn link_state(&mut self, _cx: &mut Context) -> LinkState {
        match self.regs.phy_read(PHY_BASIC_STATUS) {
            Some(status) if status & PHY_LINK_UP != 0 => LinkState::Up,
            _ => LinkState::Down,
        }
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MTU;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}
