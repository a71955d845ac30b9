//! A bare UDP responder: the machine's bound in `benches/udp.sh`.
//!
//! It answers every datagram without parsing it: the first byte's type bits
//! become ACK (a CON request) or stay NON, the code becomes 2.05, and the
//! datagram is cut after the token (4 + TKL bytes). Message ID and token are
//! untouched, so `coap load` sees a valid, minimal piggybacked response. No
//! CoAP state (deduplication, options, ...) is kept: this is what a single
//! thread doing one `recv_from` and one `send_to` per request costs, and an
//! upper bound for any CoAP server on this machine's blocking socket calls.
//!
//! ```text
//! cargo run --release --example udp_echo -- 127.0.0.1:5699
//! ```
//!
//! It runs until killed (or `LIFETIME_SECS`, the optional second argument).

use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:5699".to_owned());
    let lifetime = args
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let socket = UdpSocket::bind(&bind)?;
    eprintln!("udp_echo: listening on {}", socket.local_addr()?);
    if lifetime.is_some() {
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    }
    let started = Instant::now();
    let mut buf = [0u8; 1500];
    loop {
        if let Some(l) = lifetime
            && started.elapsed() >= l
        {
            return Ok(());
        }
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => continue,
        };
        if n < 4 {
            continue;
        }
        let tkl = usize::from(buf[0] & 0x0f).min(8);
        // Version 1; CON (0) -> ACK (2), NON (1) stays NON; keep TKL.
        let ty = match (buf[0] >> 4) & 0x3 {
            0 => 2,
            other => other,
        };
        buf[0] = 0x40 | (ty << 4) | (buf[0] & 0x0f);
        buf[1] = 0x45; // 2.05 Content
        let len = (4 + tkl).min(n);
        let _ = socket.send_to(&buf[..len], from);
    }
}
