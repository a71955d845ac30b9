//! Fuzz body for the Resource Directory client (`rd`, RFC 9176): the
//! directory's every answer comes from the input (codes, Location-Path
//! segments, discovery payloads, raw datagrams), interleaved with time
//! passing and deregistration. Checked after every step: no panic, the
//! registration's location stays within its configured bounds, a due
//! deadline is always acted on (after `handle_timeout(now)` the next
//! deadline is later than `now`), and the endpoint's tables stay within
//! their bounds.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::endpoint::{Config, Endpoint};
use crate::message::{Code, Message, MessageBuf, MessageType, OptionNumber};
use crate::rd::{RdConfig, Registration};
use crate::time::Instant;

const RD: u8 = 2;
const MAX_STEPS: usize = 96;

/// Takes the next input byte (0 once the input is used up).
fn next(data: &mut &[u8]) -> u8 {
    match data.split_first() {
        Some((&b, rest)) => {
            *data = rest;
            b
        }
        None => 0,
    }
}

/// Takes up to `n` input bytes.
fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, rest) = data.split_at(n.min(data.len()));
    *data = rest;
    head
}

/// The answer codes a directory might give, plus whatever the input says.
fn code(b: u8) -> Code {
    match b % 12 {
        0 => Code::CREATED,
        1 => Code::CHANGED,
        2 => Code::CONTENT,
        3 => Code::DELETED,
        4 => Code::NOT_FOUND,
        5 => Code::BAD_REQUEST,
        6 => Code::SERVICE_UNAVAILABLE,
        7 => Code::INTERNAL_SERVER_ERROR,
        8 => Code::FORBIDDEN,
        9 => Code::VALID,
        _ => Code(b),
    }
}

/// An answer built from the input for the request `req`: piggybacked on
/// the ACK of a CON request, or a NON with its token.
fn answer(req: &Message<'_>, data: &mut &[u8]) -> Option<Vec<u8>> {
    let flags = next(data);
    let ty = if req.ty() == MessageType::Con && flags & 1 == 0 {
        MessageType::Ack
    } else {
        MessageType::Non
    };
    let mut m = MessageBuf::new(ty, code(next(data)));
    m.set_message_id(if ty == MessageType::Ack {
        req.message_id()
    } else {
        u16::from_be_bytes([next(data), next(data)])
    });
    m.set_token(req.token()).ok()?;
    for _ in 0..(flags >> 1) % 6 {
        let len = usize::from(next(data) % 24);
        m.add_option(OptionNumber::LOCATION_PATH, take(data, len));
    }
    if flags & 0x40 != 0 {
        let len = usize::from(next(data) % 8);
        m.add_option(OptionNumber::LOCATION_QUERY, take(data, len));
    }
    if flags & 0x80 != 0 {
        m.add_option_uint(OptionNumber::MAX_AGE, u32::from(next(data)));
        let len = usize::from(next(data));
        m.add_option_uint(OptionNumber::CONTENT_FORMAT, 40);
        m.set_payload(take(data, len).to_vec());
    }
    m.to_bytes().ok()
}

pub fn rd(data: &[u8]) {
    let mut data = data;
    let first = next(&mut data);
    let mut cfg = RdConfig::new("node");
    cfg.lifetime = 60 + u32::from(first & 0x3f) * 10;
    cfg.simple = first & 0x40 != 0;
    if first & 0x80 != 0 {
        cfg.rd_path = Some(String::from("/rd"));
    }
    if next(&mut data) & 1 != 0 {
        cfg.max_refresh_interval = Some(Duration::from_secs(30));
    }
    cfg.links = String::from("</a>;rt=\"x\",</b>;if=y");
    cfg.seed = 7;
    // The joined location: its segments' bytes and one '/' before each.
    let max_location = cfg.max_location_len + cfg.max_location_segments;
    let config = Config::default();
    let bound = config.memory_bound();
    let mut ep: Endpoint<u8> = Endpoint::new(config, 1);
    let mut reg: Registration<u8> = Registration::new(cfg);
    let mut now = Instant::ZERO;
    if reg.start(&mut ep, now, RD).is_err() {
        return;
    }
    let mut buf = [0u8; 2048];
    let mut to_rd: Vec<Vec<u8>> = Vec::new();
    for _ in 0..MAX_STEPS {
        if data.is_empty() {
            break;
        }
        match next(&mut data) % 5 {
            // The directory answers the oldest request it got.
            0 | 1 => {
                if !to_rd.is_empty() {
                    let req = to_rd.remove(0);
                    if let Ok(msg) = Message::parse(&req)
                        && msg.code().is_request()
                        && let Some(bytes) = answer(&msg, &mut data)
                    {
                        ep.handle_datagram(now, RD, &bytes);
                    }
                }
            }
            // Anything at all from the directory's address.
            2 => {
                let len = usize::from(next(&mut data) % 48);
                let bytes = take(&mut data, len);
                ep.handle_datagram(now, RD, bytes);
            }
            // Time passes; every due deadline is acted on.
            3 => {
                now += Duration::from_secs(u64::from(next(&mut data)) * 8);
                ep.handle_timeout(now);
                reg.handle_timeout(&mut ep, now);
                assert!(
                    reg.poll_timeout().is_none_or(|t| t > now),
                    "a due registration deadline was not acted on"
                );
            }
            // The application deregisters, or starts again.
            _ => {
                if next(&mut data) & 1 == 0 {
                    let _ = reg.deregister(&mut ep, now);
                } else {
                    let _ = reg.start(&mut ep, now, RD);
                }
            }
        }
        // The driver's part of the contract: drain transmits, then events.
        while let Ok(Some(t)) = ep.poll_transmit(&mut buf) {
            if t.to == RD
                && to_rd.len() < 16
                && let Some(bytes) = buf.get(..t.len)
            {
                to_rd.push(bytes.to_vec());
            }
        }
        while let Some(ev) = ep.poll_event() {
            if let Some(crate::endpoint::Event::Request(req)) = reg.handle_event(&mut ep, now, ev) {
                let not_found = MessageBuf::new(MessageType::Ack, Code::NOT_FOUND);
                let _ = ep.respond(now, req.handle, &not_found);
            }
        }
        while reg.poll_event().is_some() {}
        assert!(reg.location().is_none_or(|l| l.len() <= max_location));
        assert!(ep.memory_usage() <= bound);
    }
}
