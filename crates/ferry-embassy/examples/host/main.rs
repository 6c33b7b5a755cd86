//! Host runner: the embedded driver on std, with embassy's executor and an existing TAP device as
//! the Ethernet link (smoltcp is the TCP/IP stack, as on a microcontroller).
//!
//! ```text
//! cargo run --release -p ferry-embassy --example host -- --tap TAP --address 10.77.0.2/24 \
//!     (--root DIR | --fat IMAGE) --user NAME:PASSWORD [--sessions N] [--passive-ports MIN-MAX] [--port P]
//! ```
//!
//! Prints `listening on ADDR:PORT` once it accepts connections.

mod folder;

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use embassy_executor::{Executor, Spawner};
use embassy_net::{Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use ferry_embassy::auth::{PasswordHash, User, Users};
use ferry_embassy::clock::EmbassyClock;
use ferry_embassy::driver::Context;
use ferry_embassy::fat::{FatStorage, UnixClock};
use ferry_embassy::net::{RefusalBuffers, Server, ServerConfig, SlotBuffers};
use ferry_embassy::storage::Storage;
use ferry_proto::session::{Config, Permissions};
use static_cell::StaticCell;

/// Most sessions the runner's socket set is sized for.
const MAX_SESSIONS: usize = 16;
/// TCP sockets: a control and a data socket per session, and the refusal socket.
const SOCKETS: usize = 2 * MAX_SESSIONS + 1;
/// Socket buffer sizes on the host (a microcontroller would use about 1 KiB). Data sockets of 128 KiB
/// (smoltcp scales its window beyond 64 KiB) and 32 KiB storage chunks: bench/embedded.sh measured
/// them against 32 KiB and 8 KiB (docs/embedded.md).
const CONTROL_BUFFER: usize = 2048;
const DATA_BUFFER: usize = 128 * 1024;
const CHUNK: usize = 32 * 1024;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "Ferry's embedded driver on a TAP device (embassy on std)")]
struct Args {
    /// An existing TAP device to use as the Ethernet link.
    #[arg(long)]
    tap: String,
    /// This server's IPv4 address and prefix on the link, such as 10.77.0.2/24.
    #[arg(long)]
    address: String,
    /// Serve this folder.
    #[arg(long, required_unless_present = "fat", conflicts_with = "fat")]
    root: Option<PathBuf>,
    /// Serve the FAT file system in this image file.
    #[arg(long)]
    fat: Option<PathBuf>,
    /// An account, as NAME:PASSWORD (repeatable). The password is kept only as a salted hash.
    #[arg(long = "user", required = true)]
    users: Vec<String>,
    /// Sessions served at once; one more gets 421.
    #[arg(long, default_value_t = 4)]
    sessions: usize,
    /// Ports for passive data connections.
    #[arg(long, default_value = "50000-50099")]
    passive_ports: String,
    /// The control port.
    #[arg(long, default_value_t = 21)]
    port: u16,
}

static EXECUTOR: StaticCell<Executor> = StaticCell::new();
static FAT_CLOCK: UnixClock = UnixClock(unix_now);

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Everything the server needs, checked before the executor starts.
struct Setup {
    tap: String,
    address: Ipv4Cidr,
    storage: StorageChoice,
    users: Vec<User<'static>>,
    sessions: usize,
    config: ServerConfig,
}

enum StorageChoice {
    Folder(PathBuf),
    Fat(std::fs::File),
}

fn setup(args: Args) -> Result<Setup, String> {
    let (ip, prefix) = args
        .address
        .split_once('/')
        .ok_or("--address wants ADDRESS/PREFIX, such as 10.77.0.2/24")?;
    let ip: Ipv4Addr = ip.parse().map_err(|e| format!("--address: {e}"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or("--address: bad prefix length")?;
    if args.sessions == 0 || args.sessions > MAX_SESSIONS {
        return Err(format!("--sessions must be 1..={MAX_SESSIONS}"));
    }
    let (min, max) = args
        .passive_ports
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
        .filter(|(a, b)| *a > 0 && a <= b)
        .ok_or("--passive-ports wants MIN-MAX, such as 50000-50099")?;
    let mut salt_source = std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?;
    let mut users = Vec::new();
    for spec in &args.users {
        let (name, password) = spec.split_once(':').ok_or("--user wants NAME:PASSWORD")?;
        let mut salt = [0u8; 16];
        std::io::Read::read_exact(&mut salt_source, &mut salt).map_err(|e| e.to_string())?;
        users.push(User {
            name: Box::leak(name.to_owned().into_boxed_str()),
            password: PasswordHash::new(password, salt, PasswordHash::DEFAULT_ITERATIONS),
            permissions: Permissions::ALL,
        });
    }
    let storage = match (args.root, args.fat) {
        (Some(root), _) => {
            if !root.is_dir() {
                return Err(format!("--root {}: not a directory", root.display()));
            }
            StorageChoice::Folder(root)
        }
        (None, Some(image)) => StorageChoice::Fat(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&image)
                .map_err(|e| format!("--fat {}: {e}", image.display()))?,
        ),
        (None, None) => return Err("one of --root or --fat is required".into()),
    };
    let session = Config {
        banner: String::from("Ferry (embassy) FTP server ready"),
        ..Config::default()
    };
    Ok(Setup {
        tap: args.tap,
        address: Ipv4Cidr::new(ip, prefix),
        storage,
        users,
        sessions: args.sessions,
        config: ServerConfig {
            port: args.port,
            passive_ports: min..=max,
            session,
            ..ServerConfig::default()
        },
    })
}

fn main() -> ExitCode {
    let setup = match setup(Args::parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let device = match TunTapDevice::new(&setup.tap) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: TAP device {}: {e}", setup.tap);
            return ExitCode::from(1);
        }
    };
    let executor = EXECUTOR.init(Executor::new());
    executor.run(|spawner| {
        spawner.spawn(main_task(spawner, device, setup).expect("the task is spawned once"));
    })
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn main_task(spawner: Spawner, device: TunTapDevice, setup: Setup) {
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: setup.address,
        gateway: None,
        dns_servers: Default::default(),
    });
    let resources = Box::leak(Box::new(StackResources::<SOCKETS>::new()));
    let seed = u64::from_ne_bytes(
        unix_now()
            .wrapping_mul(6_364_136_223_846_793_005)
            .to_ne_bytes(),
    );
    let (stack, runner) = embassy_net::new(device, config, resources, seed);
    spawner.spawn(net_task(runner).expect("the task is spawned once"));
    let address = setup.address.address();
    let port = setup.config.port;
    let users: &'static [User<'static>] = setup.users.leak();
    let users: &'static Users<'static> = Box::leak(Box::new(Users::new(users)));
    let config: &'static ServerConfig = Box::leak(Box::new(setup.config));
    let ready = move || {
        println!("listening on {address}:{port}");
        let _ = std::io::stdout().flush();
    };
    match setup.storage {
        StorageChoice::Folder(root) => {
            let storage = Box::leak(Box::new(folder::Folder::new(root)));
            serve(stack, storage, users, config, setup.sessions, ready).await
        }
        StorageChoice::Fat(file) => match FatStorage::mount(file, &FAT_CLOCK) {
            Ok(fat) => {
                let storage = Box::leak(Box::new(fat));
                serve(stack, storage, users, config, setup.sessions, ready).await
            }
            Err(_) => {
                eprintln!("error: --fat: no FAT file system in the image");
                std::process::exit(1);
            }
        },
    }
}

async fn serve<S: Storage>(
    stack: embassy_net::Stack<'static>,
    storage: &'static S,
    users: &'static Users<'static>,
    config: &'static ServerConfig,
    sessions: usize,
    ready: impl FnOnce(),
) -> ! {
    let clock: &'static EmbassyClock = Box::leak(Box::new(EmbassyClock {
        unix_at_boot: unix_now(),
    }));
    let cx = Context {
        storage,
        users,
        clock,
        config: &config.driver,
    };
    let buf = |n: usize| -> &'static mut [u8] { Box::leak(vec![0u8; n].into_boxed_slice()) };
    let mut slots: Vec<SlotBuffers<'static>> = (0..sessions)
        .map(|_| SlotBuffers {
            control_rx: buf(CONTROL_BUFFER),
            control_tx: buf(CONTROL_BUFFER),
            data_rx: buf(DATA_BUFFER),
            data_tx: buf(DATA_BUFFER),
            chunk: buf(CHUNK),
        })
        .collect();
    let refusal = RefusalBuffers {
        rx: buf(256),
        tx: buf(256),
    };
    Server::new(stack, cx, config)
        .run(&mut slots, refusal, ready)
        .await
}
