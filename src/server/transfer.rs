//! The bounded table of block-wise state: Block1 reassembly buffers,
//! streamed-upload positions and cached Block2 responses of unsafe methods.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::message::{ContentFormat, Message, MessageBuf, OptionNumber};
use crate::time::Instant;

/// Bookkeeping bytes charged per block-wise transfer on top of its buffer
/// (key, map and expiry entries, counters). Part of
/// [`ServerConfig::max_transfer_memory`](super::ServerConfig::max_transfer_memory).
///
/// ```
/// use coap_proto::server::{ServerConfig, TRANSFER_BYTES};
/// // How many 1 KiB partial uploads the default memory bound holds at most:
/// let n = ServerConfig::default().max_transfer_memory / (TRANSFER_BYTES + 1024);
/// assert_eq!(n, 7084);
/// ```
pub const TRANSFER_BYTES: usize = 160;

/// What identifies a block-wise transfer (RFC 7959 §2.5 and RFC 9175 §3:
/// the requesting endpoint, the resource, the method, and the Request-Tag
/// options, where an absent Request-Tag differs from an empty one).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TransferKey<A> {
    pub(crate) peer: A,
    pub(crate) resource: usize,
    pub(crate) method: u8,
    /// Each Request-Tag as `len + 1` followed by its bytes; empty when the
    /// request has none.
    pub(crate) tag: Vec<u8>,
}

impl<A> TransferKey<A> {
    pub(crate) fn new(peer: A, resource: usize, msg: &Message<'_>) -> Self {
        let mut tag = Vec::new();
        for t in msg.options_of(OptionNumber::REQUEST_TAG) {
            tag.push(t.len().min(254) as u8 + 1);
            tag.extend_from_slice(t);
        }
        Self {
            peer,
            resource,
            method: msg.code().0,
            tag,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Body {
    /// A Block1 body being reassembled.
    Upload(Vec<u8>),
    /// A Block1 body handed to the handler block by block.
    Stream,
    /// The full response of an unsafe request, served block by block
    /// (RFC 7959 §2.7).
    Download(MessageBuf),
}

#[derive(Debug)]
pub(crate) struct Transfer {
    pub(crate) body: Body,
    /// Bytes of request body received (uploads and streams).
    pub(crate) received: usize,
    /// Offset and length of the last block accepted, to recognise a
    /// repeated block.
    pub(crate) last: (usize, usize),
    /// The Content-Format of the first block (RFC 7959 §2.3: blocks with
    /// another format are not assembled with it).
    pub(crate) format: Option<ContentFormat>,
    expires: Instant,
    cost: usize,
}

impl Transfer {
    pub(crate) fn new(body: Body, format: Option<ContentFormat>) -> Self {
        Self {
            body,
            received: 0,
            last: (0, 0),
            format,
            expires: Instant::ZERO,
            cost: 0,
        }
    }

    fn cost_of<A>(key: &TransferKey<A>, body: &Body) -> usize {
        TRANSFER_BYTES
            + key.tag.len()
            + match body {
                Body::Upload(b) => b.capacity(),
                Body::Stream => 0,
                Body::Download(m) => m.encoded_len(),
            }
    }
}

/// Why a transfer could not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Full;

#[derive(Debug)]
pub(crate) struct Transfers<A> {
    map: BTreeMap<TransferKey<A>, Transfer>,
    expiry: BTreeSet<(Instant, TransferKey<A>)>,
    memory: usize,
}

impl<A: Copy + Ord> Transfers<A> {
    pub(crate) fn new() -> Self {
        Self {
            map: BTreeMap::new(),
            expiry: BTreeSet::new(),
            memory: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn memory(&self) -> usize {
        self.memory
    }

    pub(crate) fn get_mut(&mut self, key: &TransferKey<A>) -> Option<&mut Transfer> {
        self.map.get_mut(key)
    }

    pub(crate) fn remove(&mut self, key: &TransferKey<A>) -> Option<Transfer> {
        let t = self.map.remove(key)?;
        self.expiry.remove(&(t.expires, key.clone()));
        self.memory = self.memory.saturating_sub(t.cost);
        Some(t)
    }

    /// Stores a new transfer (replacing one with the same key) if the count
    /// and memory bounds allow it.
    pub(crate) fn insert(
        &mut self,
        key: TransferKey<A>,
        mut t: Transfer,
        expires: Instant,
        max_count: usize,
        max_memory: usize,
    ) -> Result<(), Full> {
        self.remove(&key);
        let cost = Transfer::cost_of(&key, &t.body);
        if self.map.len() >= max_count || self.memory.saturating_add(cost) > max_memory {
            return Err(Full);
        }
        t.cost = cost;
        t.expires = expires;
        self.memory += cost;
        self.expiry.insert((expires, key.clone()));
        self.map.insert(key, t);
        Ok(())
    }

    /// Moves the transfer's expiry to `expires`.
    pub(crate) fn touch(&mut self, key: &TransferKey<A>, expires: Instant) {
        if let Some(t) = self.map.get_mut(key) {
            self.expiry.remove(&(t.expires, key.clone()));
            t.expires = expires;
            self.expiry.insert((expires, key.clone()));
        }
    }

    /// Appends `data` to an upload's buffer, growing it (by doubling, up to
    /// `limit` bytes) only while the total stays within `max_memory`.
    pub(crate) fn append(
        &mut self,
        key: &TransferKey<A>,
        data: &[u8],
        limit: usize,
        max_memory: usize,
    ) -> Result<(), Full> {
        let memory = self.memory;
        let Some(t) = self.map.get_mut(key) else {
            return Err(Full);
        };
        let Body::Upload(buf) = &mut t.body else {
            return Err(Full);
        };
        let need = buf.len().saturating_add(data.len());
        let cap = buf.capacity();
        if need > cap {
            let others = memory.saturating_sub(cap);
            let budget = max_memory.saturating_sub(others);
            let doubled = cap.saturating_mul(2).max(64).min(limit.max(need));
            let target = if doubled.max(need) <= budget {
                doubled.max(need)
            } else if need <= budget {
                need
            } else {
                return Err(Full);
            };
            let len = buf.len();
            if buf.try_reserve_exact(target - len).is_err() {
                return Err(Full);
            }
            let grown = buf.capacity().saturating_sub(cap);
            t.cost = t.cost.saturating_add(grown);
            self.memory = self.memory.saturating_add(grown);
        }
        buf.extend_from_slice(data);
        Ok(())
    }

    /// The earliest expiry, if any.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|(at, _)| *at)
    }

    /// Drops transfers idle until `now`, at most `budget` of them. Returns
    /// how many were dropped.
    pub(crate) fn expire(&mut self, now: Instant, budget: usize) -> usize {
        let mut n = 0;
        while n < budget
            && let Some(key) = super::pop_due(&mut self.expiry, now)
        {
            self.remove(&key);
            n += 1;
        }
        n
    }
}
