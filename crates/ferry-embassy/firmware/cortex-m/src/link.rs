//! A placeholder Ethernet link for boards without a MAC driver here: frames sent are dropped and
//! none arrive. It lets the firmware link and size the whole stack; a real board puts its
//! embassy-net driver (embassy-stm32's ETH, a W5500, esp-radio's Wi-Fi) in its place.

use core::task::Context;

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};

/// The link.
pub struct NullLink;

/// Never constructed: nothing arrives.
pub struct NoRx;

/// A send buffer whose frame is dropped.
pub struct DropTx([u8; 1514]);

impl RxToken for NoRx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(&mut [])
    }
}

impl TxToken for DropTx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, len: usize, f: F) -> R {
        let len = len.min(self.0.len());
        f(&mut self.0[..len])
    }
}

impl Driver for NullLink {
    type RxToken<'a> = NoRx;
    type TxToken<'a> = DropTx;

    fn receive(&mut self, _cx: &mut Context) -> Option<(NoRx, DropTx)> {
        None
    }

    fn transmit(&mut self, _cx: &mut Context) -> Option<DropTx> {
        Some(DropTx([0; 1514]))
    }

    fn link_state(&mut self, _cx: &mut Context) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = 1514;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet([0x02, 0x00, 0x00, 0x00, 0x00, 0x01])
    }
}
