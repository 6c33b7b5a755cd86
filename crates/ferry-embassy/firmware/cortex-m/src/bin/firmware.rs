//! The whole stack on a Cortex-M4F: engine, driver, embassy-net, FAT (on a RAM disk here; an SD
//! card on a board), four sessions with 1 KiB socket buffers.
#![no_std]
#![no_main]

extern crate alloc;

use core::net::Ipv4Addr;

use embassy_executor::{Executor, Spawner};
use embassy_net::{Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use ferry_embassy::auth::{PasswordHash, User, Users};
use ferry_embassy::clock::EmbassyClock;
use ferry_embassy::driver::Context;
use ferry_embassy::fat::{BlockIo, FatStorage, UnixClock};
use ferry_embassy::net::{RefusalBuffers, Server, ServerConfig, SlotBuffers};
use ferry_firmware_cortex_m::link::NullLink;
use ferry_firmware_cortex_m::ramdisk::RamDisk;
use ferry_firmware_cortex_m::{init_heap, time};
use ferry_proto::session::Permissions;
use panic_halt as _;
use static_cell::StaticCell;

const SESSIONS: usize = 4;
const SOCKET_BUFFER: usize = 1024;
const CHUNK: usize = 512;
/// The RAM disk: 128 blocks (64 KiB); a board has its SD card instead.
const BLOCKS: usize = 128;

/// The PBKDF2-HMAC-SHA256 hash of the password "esp32" (1000 iterations, the salt shown), as
/// `python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha256', b'esp32', bytes.fromhex(SALT),
/// 1000).hex())"` prints it: the firmware holds only the hash.
const PASSWORD: &str =
    "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff$7a387d71a1441218ac1763cd9a206c7bd9a025afa704155c799bb9365b891905";

type Disk = BlockIo<&'static RamDisk<BLOCKS>>;

static EXECUTOR: StaticCell<Executor> = StaticCell::new();
static FAT_CLOCK: UnixClock = UnixClock(no_wall_clock);

fn no_wall_clock() -> i64 {
    0
}

#[cortex_m_rt::entry]
fn main() -> ! {
    init_heap::<{ 48 * 1024 }>();
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

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, NullLink>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn main_task(spawner: Spawner) {
    static RESOURCES: StaticCell<StackResources<{ 2 * SESSIONS + 1 }>> = StaticCell::new();
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(Ipv4Addr::new(192, 168, 4, 1), 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    let (stack, runner) = embassy_net::new(
        NullLink,
        config,
        RESOURCES.init(StackResources::new()),
        0x5eed,
    );
    if let Ok(token) = net_task(runner) {
        spawner.spawn(token);
    }

    static DISK: StaticCell<RamDisk<BLOCKS>> = StaticCell::new();
    let disk: &'static RamDisk<BLOCKS> = DISK.init(RamDisk(core::cell::RefCell::new(
        [const { embedded_sdmmc::Block { contents: [0; 512] } }; BLOCKS],
    )));
    let Ok(io) = BlockIo::new(disk) else { return };
    static STORAGE: StaticCell<FatStorage<Disk>> = StaticCell::new();
    let Ok(fat) = FatStorage::mount(io, &FAT_CLOCK) else {
        // No FAT file system on the disk.
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
        .run(&mut slots, RefusalBuffers { rx, tx }, || {})
        .await
}
