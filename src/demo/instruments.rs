//! The demo's analyzers: one simulated instrument per protocol, each in its own market's
//! testing room, on the link its protocol document names: the printer line of the enzyme
//! photometer, the gold card reader, the spectrophotometer and the three polled analyzers
//! (LZ-4000T, TL310, DY-723PC, which answer only when asked) are RS-232 (here pty pairs, real
//! serial ports to the service); the HL7 lab system speaks MLLP over TCP, and the ASTM lab
//! analyzer the TCP variant its document allows (so that both transports carry a protocol
//! with acknowledgements).
//!
//! Each runs [`foodgate_devices::sim`] in-process, as `foodgate simulate` does, and starts
//! again (with the next seed) when its run ends or the line drops, until the demo stops.

use foodgate_devices::sim::{self, SimConfig};
use foodgate_devices::transport::{PortStream, Pty};
use foodgate_parsers::Protocol;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Share of positive samples: a failure now and then, as in a real testing room.
pub const POSITIVE_RATE: f64 = 0.07;
/// Samples per simulator run before it starts again with the next seed.
const RUN: usize = 10_000;
/// Pause before a simulator whose line dropped tries again.
const RETRY: Duration = Duration::from_secs(1);

/// One simulated analyzer: which instrument of which market, on which link.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub id: &'static str,
    pub market: &'static str,
    pub protocol: Protocol,
    pub tcp: bool,
    /// Seconds between samples (the enzyme photometer prints four at a time).
    pub every_s: u64,
    /// `encoding` of its `[[instrument]]` when the protocol's default is not what it sends.
    pub encoding: Option<&'static str>,
}

/// The eight analyzers, a different market each: one per protocol.
pub const PLAN: [Plan; 8] = [
    Plan {
        id: "ZB-0003-EP1",
        market: "ZB-0003",
        protocol: Protocol::EnzymePrint,
        tcp: false,
        every_s: 8,
        encoding: None,
    },
    Plan {
        id: "ZB-0007-GC1",
        market: "ZB-0007",
        protocol: Protocol::GoldCard,
        tcp: false,
        every_s: 3,
        encoding: None,
    },
    Plan {
        id: "ZB-0012-SP1",
        market: "ZB-0012",
        protocol: Protocol::Spectro,
        tcp: false,
        every_s: 4,
        encoding: None,
    },
    Plan {
        id: "ZB-0021-LAB1",
        market: "ZB-0021",
        protocol: Protocol::Astm,
        tcp: true,
        every_s: 4,
        // ASTM's default is Latin-1; this analyzer sends GBK, as Chinese-market ones do.
        encoding: Some("gbk"),
    },
    Plan {
        id: "ZB-0033-LIS1",
        market: "ZB-0033",
        protocol: Protocol::Hl7,
        tcp: true,
        every_s: 5,
        encoding: None,
    },
    // The polled analyzers keep their results until asked: foodgate polls them every
    // POLL_EVERY_S; they finish a test every `every_s`.
    Plan {
        id: "ZB-0051-LZ1",
        market: "ZB-0051",
        protocol: Protocol::Lz4000t,
        tcp: false,
        every_s: 20,
        encoding: None,
    },
    Plan {
        id: "ZB-0052-TL1",
        market: "ZB-0052",
        protocol: Protocol::Tl310,
        tcp: false,
        every_s: 15,
        encoding: None,
    },
    Plan {
        id: "ZB-0068-DY1",
        market: "ZB-0068",
        protocol: Protocol::Dy723pc,
        tcp: false,
        every_s: 25,
        encoding: None,
    },
];

/// How often the demo polls its polled analyzers.
pub const POLL_EVERY_S: u64 = 10;
/// Records a polled analyzer holds when the demo starts, over its last three days.
const POLLED_HISTORY: usize = 12;

/// A planned analyzer with its line: a pty pair made before the service is configured (its
/// path goes into the config), or a TCP address learned once the service listens.
#[derive(Debug)]
pub struct Analyzer {
    pub plan: Plan,
    pty: Option<Pty>,
}

/// Open a pty pair for every serial analyzer of [`PLAN`].
pub fn prepare() -> io::Result<Vec<Analyzer>> {
    PLAN.iter()
        .map(|plan| {
            let pty = if plan.tcp { None } else { Some(Pty::open()?) };
            Ok(Analyzer { plan: *plan, pty })
        })
        .collect()
}

impl Analyzer {
    /// Its `[[instrument]]` table (TCP links listen on a free port of 127.0.0.1).
    pub fn config_toml(&self) -> String {
        let p = &self.plan;
        let link = match &self.pty {
            Some(pty) => format!(
                "serial = {{ path = {:?} }}",
                pty.path().display().to_string()
            ),
            None => "tcp = { listen = \"127.0.0.1:0\" }".to_string(),
        };
        let encoding = p
            .encoding
            .map(|e| format!("encoding = {e:?}\n"))
            .unwrap_or_default();
        let poll = if p.protocol.is_polled() {
            format!("poll = {{ every_s = {POLL_EVERY_S} }}\n")
        } else {
            String::new()
        };
        format!(
            "[[instrument]]\nid = {:?}\nmarket = {:?}\nprotocol = {:?}\n{encoding}{link}\n{poll}",
            p.id,
            p.market,
            p.protocol.as_str()
        )
    }

    /// Start sending; `tcp` holds the addresses the service's TCP links bound.
    pub fn spawn(
        self,
        tcp: &[(String, SocketAddr)],
        stop: watch::Receiver<bool>,
    ) -> io::Result<JoinHandle<()>> {
        let plan = self.plan;
        match self.pty {
            Some(pty) => {
                let stream = pty.into_stream()?;
                Ok(tokio::spawn(serial_loop(plan, stream, stop)))
            }
            None => {
                let addr = tcp
                    .iter()
                    .find(|(id, _)| id == plan.id)
                    .map(|(_, a)| *a)
                    .ok_or_else(|| {
                        io::Error::other(format!("instrument {} has no TCP listener", plan.id))
                    })?;
                Ok(tokio::spawn(tcp_loop(plan, addr, stop)))
            }
        }
    }
}

fn sim_config(plan: &Plan, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(plan.protocol);
    // A polled analyzer holds `count` records from its last days and adds one every
    // `interval`; the others send `count` samples one after another.
    cfg.count = if plan.protocol.is_polled() {
        POLLED_HISTORY
    } else {
        RUN
    };
    cfg.interval = Duration::from_secs(plan.every_s);
    cfg.positive_rate = POSITIVE_RATE;
    cfg.seed = seed;
    // The instrument reports the id it is configured under, as a real one's serial number.
    cfg.serial = plan.id.to_string();
    cfg
}

/// Seeds differ per analyzer so that the markets do not test the same samples.
fn first_seed(plan: &Plan) -> u64 {
    plan.id
        .bytes()
        .fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn serial_loop(plan: Plan, mut stream: PortStream, mut stop: watch::Receiver<bool>) {
    let mut seed = first_seed(&plan);
    let mut log = move |line: String| tracing::debug!(instrument = plan.id, "{line}");
    tokio::select! {
        () = stream.wait_peer() => {}
        () = stopped(&mut stop) => return,
    }
    loop {
        let cfg = sim_config(&plan, seed);
        tokio::select! {
            r = sim::run(&cfg, &mut stream, &mut log) => {
                if let Err(e) = r {
                    tracing::warn!(instrument = plan.id, "simulator: {e}");
                }
            }
            () = stopped(&mut stop) => return,
        }
        seed += 1;
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = stopped(&mut stop) => return,
        }
    }
}

async fn tcp_loop(plan: Plan, addr: SocketAddr, mut stop: watch::Receiver<bool>) {
    let mut seed = first_seed(&plan);
    let mut log = move |line: String| tracing::debug!(instrument = plan.id, "{line}");
    loop {
        let cfg = sim_config(&plan, seed);
        let run = async {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            sim::run(&cfg, stream, &mut log).await
        };
        tokio::select! {
            r = run => {
                if let Err(e) = r {
                    tracing::warn!(instrument = plan.id, "simulator: {e}");
                }
            }
            () = stopped(&mut stop) => return,
        }
        seed += 1;
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = stopped(&mut stop) => return,
        }
    }
}
