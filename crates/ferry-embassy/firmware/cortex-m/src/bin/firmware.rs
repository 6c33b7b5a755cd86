//! The whole stack on an MPS2 AN386 (Cortex-M4), a real board or QEMU's `mps2-an386`: engine,
//! driver, embassy-net over the board's LAN9118 Ethernet controller at `10.0.2.15/24` (QEMU's
//! user-mode network address; the QEMU test puts a TAP device at `10.0.2.2` in a network namespace),
//! FAT on the board's PSRAM (which QEMU loads with an image), four sessions with 2 KiB socket
//! buffers, the user `esp32` (password `esp32`, stored as a PBKDF2 hash). UART0 says
//! `listening on 10.0.2.15:21` once connections are accepted.
#![no_std]
#![no_main]

extern crate alloc;

use core::net::Ipv4Addr;

use cortex_m::peripheral::NVIC;
use cortex_m_rt::exception;
use embassy_executor::{Executor, Spawner};
use embassy_net::{Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use ferry_embassy::auth::{PasswordHash, User, Users};
use ferry_embassy::clock::EmbassyClock;
use ferry_embassy::driver::Context;
use ferry_embassy::fat::{BlockIo, FatStorage, UnixClock};
use ferry_embassy::net::{RefusalBuffers, Server, ServerConfig, SlotBuffers};
use ferry_firmware_cortex_m::lan9118::{Irq, Lan9118, MPS2_BASE, MPS2_IRQ};
use ferry_firmware_cortex_m::memdisk::{MemDisk, MPS2_PSRAM};
use ferry_firmware_cortex_m::{init_heap, time, uart};
use ferry_proto::session::Permissions;
use panic_halt as _;
use static_cell::StaticCell;

const SESSIONS: usize = 4;
const SOCKET_BUFFER: usize = 2048;
const CHUNK: usize = 1024;
/// The FAT volume: the first 8 MiB of the PSRAM.
const DISK_BLOCKS: u32 = 8 * 1024 * 2;
const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

/// The PBKDF2-HMAC-SHA256 hash of the password "esp32" (1000 iterations, the salt shown), as
/// `python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha256', b'esp32', bytes.fromhex(SALT),
/// 1000).hex())"` prints it: the firmware holds only the hash.
const PASSWORD: &str =
    "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff$7a387d71a1441218ac1763cd9a206c7bd9a025afa704155c799bb9365b891905";

static EXECUTOR: StaticCell<Executor> = StaticCell::new();
static FAT_CLOCK: UnixClock = UnixClock(no_wall_clock);

fn no_wall_clock() -> i64 {
    0
}

#[cortex_m_rt::entry]
fn main() -> ! {
    init_heap::<{ 48 * 1024 }>();
    uart::init();
    if let Some(p) = cortex_m::Peripherals::take() {
        time::start(p.SYST, 25_000_000);
    }
    let executor = EXECUTOR.init(Executor::new());
    executor.run(|spawner| {
        if let Ok(token) = main_task(spawner) {
            spawner.spawn(token);
        }
    })
}

/// Device interrupts: the LAN9118's wakes the network stack; there are no others.
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == MPS2_IRQ as i16 {
        Lan9118::on_interrupt(MPS2_BASE);
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Lan9118>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn main_task(spawner: Spawner) {
    // SAFETY: the MPS2 boards' LAN9118 register block; nothing else drives it.
    let Some(ethernet) = (unsafe { Lan9118::new(MPS2_BASE) }) else {
        uart::write("no LAN9118 Ethernet controller\n");
        return;
    };
    // SAFETY: the interrupt's handler (DefaultHandler) only touches the controller and a waker.
    unsafe { NVIC::unmask(Irq(MPS2_IRQ)) };
    static RESOURCES: StaticCell<StackResources<{ 2 * SESSIONS + 1 }>> = StaticCell::new();
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(ADDRESS, 24),
        gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
        dns_servers: Default::default(),
    });
    let (stack, runner) = embassy_net::new(
        ethernet,
        config,
        RESOURCES.init(StackResources::new()),
        0x5eed,
    );
    if let Ok(token) = net_task(runner) {
        spawner.spawn(token);
    }

    // SAFETY: the PSRAM is not used otherwise (code and data are in the SSRAMs, memory.x).
    let disk = unsafe { MemDisk::new(MPS2_PSRAM, DISK_BLOCKS) };
    let Ok(io) = BlockIo::new(disk) else { return };
    static STORAGE: StaticCell<FatStorage<BlockIo<MemDisk>>> = StaticCell::new();
    let Ok(fat) = FatStorage::mount(io, &FAT_CLOCK) else {
        uart::write("no FAT volume in the PSRAM\n");
        return;
    };
    let storage = STORAGE.init(fat);

    static USERS: StaticCell<[User<'static>; 1]> = StaticCell::new();
    let Some(hash) = PasswordHash::parse(PASSWORD) else {
        return;
    };
    let users = USERS.init([User {
        name: "esp32",
        password: hash,
        permissions: Permissions::ALL,
    }]);
    static USER_LIST: StaticCell<Users<'static>> = StaticCell::new();
    let users = USER_LIST.init(Users::new(users));
    static CLOCK: EmbassyClock = EmbassyClock { unix_at_boot: 0 };
    static CONFIG: StaticCell<ServerConfig> = StaticCell::new();
    let config = CONFIG.init(ServerConfig::default());

    static BUFFERS: StaticCell<[[u8; 4 * SOCKET_BUFFER + CHUNK]; SESSIONS]> = StaticCell::new();
    let buffers = BUFFERS.init([[0; 4 * SOCKET_BUFFER + CHUNK]; SESSIONS]);
    let mut slots: alloc::vec::Vec<_> = buffers
        .iter_mut()
        .filter_map(|b| SlotBuffers::split(b, SOCKET_BUFFER))
        .collect();
    static REFUSAL: StaticCell<[u8; 128]> = StaticCell::new();
    let refusal = REFUSAL.init([0; 128]);
    let (rx, tx) = refusal.split_at_mut(64);
    let cx = Context {
        storage,
        users,
        clock: &CLOCK,
        config: &config.driver,
    };
    Server::new(stack, cx, config)
        .run(&mut slots, RefusalBuffers { rx, tx }, || {
            uart::write("listening on 10.0.2.15:21\n")
        })
        .await
}
