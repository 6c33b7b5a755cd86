//! Text out of UART0 of the MPS2 boards (an ARM CMSDK APB UART at `0x4000_4000`; QEMU's
//! `-serial`): the firmware says what it does, and the QEMU test waits for its `listening on` line.

use core::ptr::{read_volatile, write_volatile};

const UART0: usize = 0x4000_4000;
const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1;
const CTRL_TX_ENABLE: u32 = 1;

/// Enables the transmitter (25 MHz / 217 = 115200 baud on a board).
pub fn init() {
    // SAFETY: UART0's registers on the MPS2 boards; nothing else drives this UART.
    unsafe {
        write_volatile((UART0 + BAUDDIV) as *mut u32, 217);
        write_volatile((UART0 + CTRL) as *mut u32, CTRL_TX_ENABLE);
    }
}

/// Writes `text`, waiting while the transmit buffer is full.
pub fn write(text: &str) {
    for b in text.bytes() {
        // SAFETY: as in `init`.
        unsafe {
            while read_volatile((UART0 + STATE) as *const u32) & STATE_TX_FULL != 0 {}
            write_volatile((UART0 + DATA) as *mut u32, u32::from(b));
        }
    }
}
