//! Ferry on an ESP32-C3, as in the ESP32 FTP document: the chip opens a Wi-Fi access point
//! (SoftAP, `192.168.4.1`, with a DHCP server for the clients that join), reads and writes the FAT
//! file system of an SD card on SPI, and serves it over FTP on port 21 to the user `esp32` (password
//! `esp32`, stored as a PBKDF2 hash), four sessions at once, passive data ports from 1300.
//!
//! Wiring (the C3's own SPI pins): SCK GPIO6, MOSI GPIO7, MISO GPIO2, card select GPIO10.
#![no_std]
#![no_main]

extern crate alloc;

use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use embassy_executor::Spawner;
use embassy_net::{Ipv4Cidr, Runner, Stack, StackResources, StaticConfigV4};
use embassy_time::{Duration, Timer};
use embedded_hal_bus::spi::ExclusiveDevice;
use embedded_sdmmc::SdCard;
use esp_hal::clock::CpuClock;
use esp_hal::delay::Delay;
use esp_hal::gpio::{Level, Output, OutputConfig};
use esp_hal::rng::Rng;
use esp_hal::spi::master::{Config as SpiConfig, Spi};
use esp_hal::spi::Mode;
use esp_hal::time::Rate;
use esp_hal::timer::timg::TimerGroup;
use esp_hal::Blocking;
use esp_radio::wifi::ap::AccessPointConfig;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config as WifiConfig, ControllerConfig, Interface, WifiController,
};
use ferry_embassy::auth::{PasswordHash, User, Users};
use ferry_embassy::clock::EmbassyClock;
use ferry_embassy::driver::Context;
use ferry_embassy::fat::{BlockIo, FatStorage, UnixClock};
use ferry_embassy::net::{RefusalBuffers, Server, ServerConfig, SlotBuffers};
use ferry_proto::session::Permissions;
use static_cell::StaticCell;

esp_bootloader_esp_idf::esp_app_desc!();

/// The access point: its name, WPA2 passphrase and address (the document's 192.168.4.1/24).
const SSID: &str = "ferry-esp32";
const PASSPHRASE: &str = "ferry-esp32";
const ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 1);

/// Sessions at once, and the memory of each (four socket buffers and the transfer chunk).
const SESSIONS: usize = 4;
const SOCKET_BUFFER: usize = 2048;
const CHUNK: usize = 512;

/// The PBKDF2-HMAC-SHA256 hash of the password "esp32" (1000 iterations, the salt shown), as
/// `python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha256', b'esp32', bytes.fromhex(SALT),
/// 1000).hex())"` prints it: the firmware holds only the hash.
const PASSWORD: &str =
    "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff$7a387d71a1441218ac1763cd9a206c7bd9a025afa704155c799bb9365b891905";

/// The SD card on SPI, with its chip-select pin and a delay for its start-up.
type Card = SdCard<ExclusiveDevice<Spi<'static, Blocking>, Output<'static>, Delay>, Delay>;

/// No real-time clock: files get the FAT epoch (1980) unless a client sets times with MFMT.
static FAT_CLOCK: UnixClock = UnixClock(no_wall_clock);

fn no_wall_clock() -> i64 {
    0
}

/// Sockets: two per session, the refusal socket, the DHCP server's UDP socket.
const SOCKETS: usize = 2 * SESSIONS + 2;

macro_rules! make_static {
    ($t:ty, $val:expr) => {{
        static CELL: StaticCell<$t> = StaticCell::new();
        CELL.init($val)
    }};
}

#[esp_rtos::main]
async fn main(spawner: Spawner) -> ! {
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    // The Wi-Fi driver needs about 70 KiB of heap; the engine a few hundred bytes per session.
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: 48 * 1024);

    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    // SoftAP with WPA2.
    let (Ok(ssid), Ok(passphrase)) = (SSID.try_into(), PASSPHRASE.try_into()) else {
        halt()
    };
    let access_point = AccessPointConfig::default()
        .with_ssid(ssid)
        .with_authentication(AuthenticationMethodConfig::Wpa2Personal(passphrase));
    let controller = WifiController::new(
        peripherals.WIFI,
        ControllerConfig::default().with_initial_config(WifiConfig::AccessPoint(access_point)),
    );
    let Ok(controller) = controller else { halt() };
    let wifi = Interface::access_point();

    let rng = Rng::new();
    let seed = u64::from(rng.random()) << 32 | u64::from(rng.random());
    let (stack, runner) = embassy_net::new(
        wifi,
        embassy_net::Config::ipv4_static(StaticConfigV4 {
            address: Ipv4Cidr::new(ADDRESS, 24),
            gateway: None,
            dns_servers: Default::default(),
        }),
        make_static!(StackResources<SOCKETS>, StackResources::new()),
        seed,
    );
    if let Ok(token) = net_task(runner) {
        spawner.spawn(token);
    }
    if let Ok(token) = keep_wifi(controller) {
        spawner.spawn(token);
    }
    if let Ok(token) = dhcp_server(stack) {
        spawner.spawn(token);
    }

    // The SD card: identified at 400 kHz, then run at 20 MHz.
    let Ok(spi) = Spi::new(
        peripherals.SPI2,
        SpiConfig::default()
            .with_frequency(Rate::from_khz(400))
            .with_mode(Mode::_0),
    ) else {
        halt()
    };
    let spi = spi
        .with_sck(peripherals.GPIO6)
        .with_mosi(peripherals.GPIO7)
        .with_miso(peripherals.GPIO2);
    let cs = Output::new(peripherals.GPIO10, Level::High, OutputConfig::default());
    let device = match ExclusiveDevice::new(spi, cs, Delay::new()) {
        Ok(device) => device,
        Err(never) => match never {},
    };
    let card: Card = SdCard::new(device, Delay::new());
    if card.num_bytes().is_err() {
        // No card, or it did not answer.
        halt()
    }
    card.spi(|dev| {
        let _ = dev
            .bus_mut()
            .apply_config(&SpiConfig::default().with_frequency(Rate::from_mhz(20)));
    });
    let Ok(io) = BlockIo::new(card) else { halt() };
    let Ok(fat) = FatStorage::mount(io, &FAT_CLOCK) else {
        // The card holds no FAT file system.
        halt()
    };
    let storage = make_static!(FatStorage<BlockIo<Card>>, fat);

    let Some(hash) = PasswordHash::parse(PASSWORD) else {
        halt()
    };
    let users = make_static!(
        [User<'static>; 1],
        [User {
            name: "esp32",
            password: hash,
            permissions: Permissions::ALL,
        }]
    );
    let users = make_static!(Users<'static>, Users::new(users));
    static CLOCK: EmbassyClock = EmbassyClock { unix_at_boot: 0 };
    let config = make_static!(
        ServerConfig,
        ServerConfig {
            passive_ports: 1300..=1300 + SESSIONS as u16 * 2,
            ..ServerConfig::default()
        }
    );

    let buffers = make_static!(
        [[u8; 4 * SOCKET_BUFFER + CHUNK]; SESSIONS],
        [[0; 4 * SOCKET_BUFFER + CHUNK]; SESSIONS]
    );
    let mut slots: alloc::vec::Vec<_> = buffers
        .iter_mut()
        .filter_map(|b| SlotBuffers::split(b, SOCKET_BUFFER))
        .collect();
    let refusal = make_static!([u8; 128], [0; 128]);
    let (rx, tx) = refusal.split_at_mut(64);
    let cx = Context {
        storage,
        users,
        clock: &CLOCK,
        config: &config.driver,
    };
    stack.wait_config_up().await;
    Server::new(stack, cx, config)
        .run(&mut slots, RefusalBuffers { rx, tx }, || {})
        .await
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface>) -> ! {
    runner.run().await
}

/// Owns the Wi-Fi controller: dropping it would stop the access point.
#[embassy_executor::task]
async fn keep_wifi(_controller: WifiController<'static>) {
    core::future::pending::<()>().await
}

/// Leases addresses on the access point's network, as ESP-IDF's SoftAP does.
#[embassy_executor::task]
async fn dhcp_server(stack: Stack<'static>) {
    use edge_dhcp::io::{self, DEFAULT_SERVER_PORT};
    use edge_dhcp::server::{Server as Dhcp, ServerOptions};
    use edge_nal::UdpBind;
    use edge_nal_embassy::{Udp, UdpBuffers};

    let buffers = make_static!(UdpBuffers<1, 640, 640, 4>, UdpBuffers::new());
    let udp = Udp::new(stack, buffers);
    let mut packet = [0u8; 640];
    let mut gateway = [Ipv4Addr::UNSPECIFIED];
    loop {
        let bound = udp
            .bind(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::UNSPECIFIED,
                DEFAULT_SERVER_PORT,
            )))
            .await;
        if let Ok(mut socket) = bound {
            let _ = io::server::run(
                &mut Dhcp::<_, 8>::new_with_et(ADDRESS),
                &ServerOptions::new(ADDRESS, Some(&mut gateway)),
                &mut socket,
                &mut packet,
            )
            .await;
        }
        Timer::after(Duration::from_millis(500)).await;
    }
}

/// Start-up failed (no card, no FAT volume, no radio): nothing to serve; wait for a reset.
fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// A panic restarts the chip: the server comes back rather than hanging.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    esp_hal::system::software_reset()
}
