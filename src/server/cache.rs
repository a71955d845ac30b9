//! The bounded cache of large representations served block-wise (RFC 7959
//! §2.4): the first block of a GET or FETCH runs the handler, its answer is
//! kept, and the follow-up blocks are sliced from it without running the
//! handler again.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::ETag;
use crate::message::{Message, MessageBuf, OptionNumber};
use crate::time::Instant;

/// Bookkeeping bytes charged per cached representation on top of its
/// encoded size and its key, which is held three times (the entry, its LRU
/// and expiry indexes). Part
/// of [`ServerConfig::max_cache_memory`](super::ServerConfig::max_cache_memory).
///
/// ```
/// use coap_proto::server::{CACHE_ENTRY_BYTES, ServerConfig};
/// let c = ServerConfig::default();
/// // The bookkeeping of a full cache is a small part of its memory bound.
/// assert!(c.max_cached_representations * CACHE_ENTRY_BYTES < c.max_cache_memory / 100);
/// ```
pub const CACHE_ENTRY_BYTES: usize = 256;

/// What selects a representation: the resource, the method (GET or FETCH),
/// the negotiated Content-Format (Accept), the Uri-Query options and the
/// FETCH body. Not the peer: two clients asking the same thing share one
/// entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RepKey {
    pub(crate) resource: usize,
    method: u8,
    format: Option<u16>,
    /// Each Uri-Query as `len` (four bytes) followed by its bytes.
    query: Vec<u8>,
    /// The request payload (FETCH).
    body: Vec<u8>,
}

impl RepKey {
    pub(crate) fn new(resource: usize, format: Option<u16>, msg: &Message<'_>) -> Self {
        let mut query = Vec::new();
        for q in msg.options_of(OptionNumber::URI_QUERY) {
            // u32: an option value can be longer than 65535 bytes (RFC
            // 7252 §3.1), and two queries must never share a key.
            let len = u32::try_from(q.len()).unwrap_or(u32::MAX);
            query.extend_from_slice(&len.to_be_bytes());
            query.extend_from_slice(q);
        }
        Self {
            resource,
            method: msg.code().0,
            format,
            query,
            body: msg.payload().to_vec(),
        }
    }

    /// The smallest key of `resource`.
    fn first_of(resource: usize) -> Self {
        Self {
            resource,
            method: 0,
            format: None,
            query: Vec::new(),
            body: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.query.len() + self.body.len()
    }
}

#[derive(Debug)]
struct Entry {
    msg: MessageBuf,
    /// The resource's state (its [`Resource::state`](super::Resource::state)
    /// ETag) when the representation was made: the entry is stale once the
    /// probe says otherwise.
    state: Option<ETag>,
    expires: Instant,
    /// Position in the LRU order.
    used: u64,
    cost: usize,
}

#[derive(Debug)]
pub(crate) struct Cache {
    map: BTreeMap<RepKey, Entry>,
    lru: BTreeMap<u64, RepKey>,
    expiry: BTreeSet<(Instant, RepKey)>,
    memory: usize,
    tick: u64,
}

impl Cache {
    pub(crate) fn new() -> Self {
        Self {
            map: BTreeMap::new(),
            lru: BTreeMap::new(),
            expiry: BTreeSet::new(),
            memory: 0,
            tick: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn memory(&self) -> usize {
        self.memory
    }

    /// The entry for `key` if it is still fresh at `now`, marked as the
    /// most recently used.
    pub(crate) fn get_mut(&mut self, key: &RepKey, now: Instant) -> Option<&mut MessageBuf> {
        if self.map.get(key)?.expires <= now {
            self.remove(key);
            return None;
        }
        self.tick += 1;
        let e = self.map.get_mut(key)?;
        // The LRU's copy of the key moves to the new position (no clone of
        // the query and FETCH body on every block).
        let stored = self.lru.remove(&e.used);
        e.used = self.tick;
        self.lru
            .insert(self.tick, stored.unwrap_or_else(|| key.clone()));
        Some(&mut e.msg)
    }

    /// Whether a fresh entry for `key` exists at `now`.
    pub(crate) fn is_fresh(&self, key: &RepKey, now: Instant) -> bool {
        self.map.get(key).is_some_and(|e| e.expires > now)
    }

    /// Whether there is an entry for `key` made in another state than
    /// `state` (the resource's state ETag now).
    pub(crate) fn made_before(&self, key: &RepKey, state: ETag) -> bool {
        self.map.get(key).is_some_and(|e| e.state != Some(state))
    }

    pub(crate) fn remove(&mut self, key: &RepKey) -> Option<MessageBuf> {
        let e = self.map.remove(key)?;
        self.lru.remove(&e.used);
        self.expiry.remove(&(e.expires, key.clone()));
        self.memory = self.memory.saturating_sub(e.cost);
        Some(e.msg)
    }

    /// Stores `msg` under `key` (replacing an entry with the same key),
    /// evicting the least recently used entries until `max_count` and
    /// `max_memory` hold. A representation larger than `max_memory` alone
    /// is not stored (returns false).
    pub(crate) fn insert(
        &mut self,
        key: RepKey,
        msg: MessageBuf,
        state: Option<ETag>,
        expires: Instant,
        max_count: usize,
        max_memory: usize,
    ) -> bool {
        self.remove(&key);
        let cost = CACHE_ENTRY_BYTES + 3 * key.len() + msg.encoded_len();
        if max_count == 0 || cost > max_memory {
            return false;
        }
        while self.map.len() >= max_count || self.memory + cost > max_memory {
            let Some((_, oldest)) = self.lru.pop_first() else {
                break;
            };
            self.remove(&oldest);
        }
        self.tick += 1;
        self.memory += cost;
        self.lru.insert(self.tick, key.clone());
        self.expiry.insert((expires, key.clone()));
        self.map.insert(
            key,
            Entry {
                msg,
                state,
                expires,
                used: self.tick,
                cost,
            },
        );
        true
    }

    /// Drops every representation of `resource`.
    pub(crate) fn invalidate(&mut self, resource: usize) -> usize {
        let keys: Vec<RepKey> = self
            .map
            .range(RepKey::first_of(resource)..)
            .take_while(|(k, _)| k.resource == resource)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            self.remove(k);
        }
        keys.len()
    }

    /// The earliest expiry, if any.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|(at, _)| *at)
    }

    /// Drops entries expired at `now`, at most `budget` of them.
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
