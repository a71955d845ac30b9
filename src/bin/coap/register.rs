//! `coap register`: registers the demo resources of `coap serve` with a
//! Resource Directory (RFC 9176) and serves them over the same socket, so
//! that the RD (or anyone, through the NAT binding the registration keeps
//! open) can reach them. A thin driver over [`coap_proto::rd`] and
//! [`UdpEndpoint`]: discovery, refreshes, back-off and removal all come
//! from the library.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use coap_proto::Instant;
use coap_proto::endpoint::Config;
use coap_proto::rd::{Phase, RdConfig, RdError, RdEvent, Registration};
use coap_proto::udp::{UdpEndpoint, os_seed};

use crate::serve::{Demo, set_trace};
use crate::{CmdResult, Failure, Global, Status};

/// How long `--for` waits for the RD to confirm the removal.
const REMOVAL_WAIT: Duration = Duration::from_secs(10);

/// Arguments of `coap register`.
#[derive(Debug, clap::Args)]
pub(crate) struct RegisterArgs {
    /// The Resource Directory, `coap://HOST[:PORT]`. Its registration
    /// interface is discovered (`/.well-known/core?rt=core.rd`), or `/rd`.
    rd: String,
    /// The endpoint name (`ep`, 1 to 63 bytes).
    #[arg(long)]
    ep: String,
    /// The lifetime in seconds (`lt`); the RD assumes 90000 without it.
    #[arg(long)]
    lt: Option<u32>,
    /// The base URI (`base`), if the RD should not use the source address.
    #[arg(long)]
    base: Option<String>,
    /// The sector (`d`).
    #[arg(long)]
    sector: Option<String>,
    /// Simple registration (RFC 9176 §5.1): an empty POST to
    /// /.well-known/rd, the RD fetches /.well-known/core.
    #[arg(long)]
    simple: bool,
    /// The registration interface path (skips discovery), e.g. /rd.
    #[arg(long)]
    rd_path: Option<String>,
    /// Refresh at least every this many seconds (a NAT keep-alive: below
    /// the NAT's idle timeout keeps the device reachable).
    #[arg(long)]
    keepalive: Option<u64>,
    /// Deregister and stop after this many seconds; runs until killed if
    /// absent.
    #[arg(long = "for", value_name = "SECONDS")]
    duration: Option<u64>,
    /// The local address to bind (default: any address, a free port).
    #[arg(long)]
    bind: Option<SocketAddr>,
}

/// The RD's socket address.
fn resolve(text: &str) -> Result<SocketAddr, Failure> {
    crate::client_cmd::resolve(&crate::client_cmd::checked_uri(text)?)
}

/// Prints one line for a registration event; true for a registration.
fn report(ep: &str, now: Instant, ev: RdEvent) -> bool {
    match ev {
        RdEvent::Registered {
            location,
            refresh_at,
        } => {
            let location = if location.is_empty() {
                "(simple registration)".to_owned()
            } else {
                location
            };
            print(&format!(
                "registered {location} as {ep} (refresh in {} s)",
                seconds(now, refresh_at)
            ));
            return true;
        }
        RdEvent::Refreshed { refresh_at } => print(&format!(
            "refreshed (next in {} s)",
            seconds(now, refresh_at)
        )),
        RdEvent::Retrying { reason, at } => {
            print(&format!("retrying in {} s: {reason}", seconds(now, at)));
        }
        // Discovered, Deregistered: as RdEvent shows them.
        other => print(&other.to_string()),
    }
    false
}

fn seconds(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_secs()
}

fn print(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

pub(crate) fn register(global: Global, args: &RegisterArgs) -> CmdResult {
    let rd = resolve(&args.rd)?;
    let bind = args.bind.unwrap_or_else(|| crate::client_cmd::any_addr(rd));
    let mut ep = UdpEndpoint::bind(bind, Config::default())
        .map_err(|e| Failure::data(format!("cannot bind {bind}: {e}")))?;
    let local = ep.local_addr().map_err(|e| Failure::data(e.to_string()))?;
    let _ = writeln!(
        std::io::stderr(),
        "coap register: serving on coap://{local}, registering with coap://{rd}"
    );
    if global.verbose >= 1 {
        set_trace(&mut ep, global.verbose, "register");
    }
    let mut demo = Demo::new(ep.now(), 2, 500, global.verbose)?;
    let mut cfg = RdConfig::new(&args.ep);
    if let Some(lt) = args.lt {
        cfg.lifetime = lt;
    }
    cfg.base.clone_from(&args.base);
    cfg.sector.clone_from(&args.sector);
    cfg.simple = args.simple;
    cfg.rd_path.clone_from(&args.rd_path);
    cfg.max_refresh_interval = args.keepalive.map(|s| Duration::from_secs(s.max(1)));
    cfg.links = demo.well_known_core();
    cfg.seed = os_seed();
    let mut reg = Registration::new(cfg);
    let now = ep.now();
    reg.start(ep.endpoint(), now, rd).map_err(|e| match e {
        RdError::Config(_) => Failure::usage(e.to_string()),
        _ => Failure::data(e.to_string()),
    })?;
    let started = StdInstant::now();
    let mut stop_at: Option<StdInstant> = None;
    let mut registered = false;
    loop {
        let now = ep.now();
        if stop_at.is_none()
            && args
                .duration
                .is_some_and(|s| started.elapsed() >= Duration::from_secs(s))
        {
            stop_at = Some(StdInstant::now() + REMOVAL_WAIT);
            if reg.deregister(ep.endpoint(), now).is_err() {
                break;
            }
        }
        if stop_at.is_some_and(|t| StdInstant::now() >= t) {
            print("deregistration unconfirmed");
            break;
        }
        reg.handle_timeout(ep.endpoint(), now);
        let mut wait = demo.tick(ep.endpoint(), now);
        if let Some(t) = reg.poll_timeout() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        ep.turn(Some(wait), |e, now, event| {
            if let Some(other) = reg.handle_event(e, now, event) {
                demo.handle_event(e, now, other);
            }
        })
        .map_err(|e| Failure::data(format!("socket error: {e}")))?;
        let now = ep.now();
        while let Some(ev) = reg.poll_event() {
            registered |= report(&args.ep, now, ev);
        }
        if stop_at.is_some() && reg.phase() == Phase::Idle {
            break;
        }
    }
    if registered {
        Ok(())
    } else {
        Err(Failure::new(Status::NoAnswer, "never registered"))
    }
}
