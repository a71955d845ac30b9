//! A bare UDP responder: the machine's bound in `benches/udp.sh`.
//!
//! It answers every datagram without parsing it: the first byte's type bits
//! become ACK (a CON request) or stay NON, the code becomes 2.05, and the
//! datagram is cut after the token (4 + TKL bytes). Message ID and token are
//! untouched, so `coap load` sees a valid, minimal piggybacked response. No
//! CoAP state (deduplication, options, ...) is kept: this is what the socket
//! calls alone cost, an upper bound for any single-threaded CoAP server on
//! this machine.
//!
//! ```text
//! cargo run --release --example udp_echo -- 127.0.0.1:5699 [LIFETIME_SECS] [--batch]
//! ```
//!
//! By default it makes one `recv_from` and one `send_to` per datagram.
//! `--batch` (with the `batch` feature, Linux only) takes every queued
//! datagram with one `recvmmsg` and answers them with one `sendmmsg`, as
//! `coap serve` does with that feature.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// Turns a request into a minimal response in place; returns its length.
fn respond_in_place(buf: &mut [u8], n: usize) -> Option<usize> {
    if n < 4 {
        return None;
    }
    let tkl = usize::from(buf[0] & 0x0f).min(8);
    // Version 1; CON (0) -> ACK (2), NON (1) stays NON; keep TKL.
    let ty = match (buf[0] >> 4) & 0x3 {
        0 => 2,
        other => other,
    };
    buf[0] = 0x40 | (ty << 4) | (buf[0] & 0x0f);
    buf[1] = 0x45; // 2.05 Content
    Some((4 + tkl).min(n))
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batch = args.iter().any(|a| a == "--batch");
    let mut positional = args.iter().filter(|a| !a.starts_with("--"));
    let bind = positional
        .next()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:5699".to_owned());
    let lifetime = positional
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let socket = UdpSocket::bind(&bind)?;
    eprintln!(
        "udp_echo: listening on {}{}",
        socket.local_addr()?,
        if batch { " (batched)" } else { "" }
    );
    if lifetime.is_some() {
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    }
    let started = Instant::now();
    let expired = || lifetime.is_some_and(|l| started.elapsed() >= l);
    if batch {
        #[cfg(all(feature = "batch", target_os = "linux"))]
        {
            mmsg::run(&socket, expired);
            return Ok(());
        }
        #[cfg(not(all(feature = "batch", target_os = "linux")))]
        return Err(std::io::Error::other(
            "--batch needs Linux and the `batch` feature",
        ));
    }
    let mut buf = [0u8; 1500];
    while !expired() {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if let Some(len) = respond_in_place(&mut buf, n) {
            let _ = socket.send_to(&buf[..len], from);
        }
    }
    Ok(())
}

#[cfg(all(feature = "batch", target_os = "linux"))]
mod mmsg {
    use std::io::{IoSlice, IoSliceMut};
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

    const BATCH: usize = 32;

    pub(super) fn run(socket: &UdpSocket, expired: impl Fn() -> bool) {
        let mut bufs = vec![[0u8; 1500]; BATCH];
        let mut rx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut tx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut lens = [0usize; BATCH];
        let mut addrs: Vec<Option<SockaddrStorage>> = vec![None; BATCH];
        while !expired() {
            let mut n = 0;
            {
                let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                    bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
                let Ok(got) = recvmmsg(
                    socket.as_raw_fd(),
                    &mut rx,
                    iovs.iter_mut(),
                    MsgFlags::MSG_WAITFORONE,
                    None,
                ) else {
                    continue;
                };
                for r in got {
                    lens[n] = r.bytes;
                    addrs[n] = r.address;
                    n += 1;
                }
            }
            let mut m = 0;
            for i in 0..n {
                if let Some(len) = respond_in_place(&mut bufs[i], lens[i]) {
                    bufs.swap(m, i);
                    addrs.swap(m, i);
                    lens[m] = len;
                    m += 1;
                }
            }
            let iovs: Vec<[IoSlice<'_>; 1]> = (0..m)
                .map(|i| [IoSlice::new(&bufs[i][..lens[i]])])
                .collect();
            let _ = sendmmsg(
                socket.as_raw_fd(),
                &mut tx,
                iovs.iter(),
                &addrs[..m],
                [],
                MsgFlags::empty(),
            );
        }
    }

    use super::respond_in_place;
}
