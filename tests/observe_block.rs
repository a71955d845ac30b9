//! Observe with Block2 through the client layer (`Transfers::observe`):
//! RFC 7959 §2.6 and §3.4 (Figures 12, 13) on top of RFC 7641.
//!
//! A server endpoint under the resource layer (`coap_proto::server`) with
//! 64-byte blocks serves an observable /big whose representation is larger
//! than one block; its notifications carry the first block only, and the
//! client completes each with plain GETs. Everything runs in virtual time
//! without loss, so every event of a scenario happens at an instant the
//! test states exactly.

use std::collections::VecDeque;

use coap_proto::client::{
    ClientConfig, ClientError, ClientEvent, FailReason, Phase, TransferId, Transfers,
};
use coap_proto::endpoint::{Config, Deregister, Endpoint, Event};
use coap_proto::server::{Reply, Resource, ResourceId, Server, ServerConfig};
use coap_proto::{
    Block, Code, ContentFormat, Instant, Message, MessageBuf, MessageType, Observe, OptionNumber,
};

const CLIENT: u32 = 1;
const SERVER: u32 = 2;
const T0: Instant = Instant::from_secs(1);

/// The representation of version `v`: 200 bytes (four 64-byte blocks, the
/// last one 8 bytes), different in every byte from one version to the next.
fn rep(v: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(v * 7) as u8)
        .collect()
}

struct Doc {
    version: u32,
    len: usize,
    /// GETs the handler answered (notifications included).
    runs: u32,
}

fn make_server() -> (Server<u32, Doc>, ResourceId) {
    let mut cfg = ServerConfig::default();
    cfg.block2_szx = 2;
    // CON notifications: the client's one notification slot (RFC 7641
    // §4.5.1, NSTART 1) frees as soon as each is acknowledged, so a
    // scenario can notify twice in a row; NON ones would hold the next
    // for the 3 s NON interval.
    cfg.notify_con = true;
    let mut s: Server<u32, Doc> = Server::new(cfg);
    let id = s
        .add(Resource::new("/big").observable().get(|d: &mut Doc, _| {
            d.runs += 1;
            let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
            // The version is the ETag: the blocks of one version share it.
            m.add_option(OptionNumber::ETAG, d.version.to_be_bytes());
            m.add_option_uint(
                OptionNumber::CONTENT_FORMAT,
                u32::from(ContentFormat::OCTET_STREAM.0),
            );
            m.set_payload(rep(d.version, d.len));
            Reply::Now(m)
        }))
        .unwrap();
    (s, id)
}

/// What happens to a request datagram of the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hook {
    Serve,
    /// Kept until [`Net::release`].
    Hold,
}

struct Net {
    now: Instant,
    client: Endpoint<u32>,
    server_ep: Endpoint<u32>,
    server: Server<u32, Doc>,
    res: ResourceId,
    doc: Doc,
    transfers: Transfers<u32>,
    /// Every request the client sent: instant and message.
    sent: Vec<(Instant, MessageBuf)>,
    /// Every datagram the client sent that is not a request (ACKs, Resets).
    acks: Vec<MessageBuf>,
    hook: Box<dyn FnMut(&Message<'_>) -> Hook>,
    held: VecDeque<Vec<u8>>,
    /// What the layer reported, with the instant.
    events: Vec<(Instant, ClientEvent<u32>)>,
}

impl Net {
    fn new(cc: ClientConfig) -> Self {
        let (server, res) = make_server();
        Self {
            now: T0,
            client: Endpoint::new(Config::default(), 0xc11e),
            server_ep: Endpoint::new(Config::default(), 0x5e4e),
            server,
            res,
            doc: Doc {
                version: 1,
                len: 200,
                runs: 0,
            },
            transfers: Transfers::new(cc),
            sent: Vec::new(),
            acks: Vec::new(),
            hook: Box::new(|_| Hook::Serve),
            held: VecDeque::new(),
            events: Vec::new(),
        }
    }

    fn observe(&mut self) -> coap_proto::client::TransferId {
        let mut get = MessageBuf::new(MessageType::Con, Code::GET);
        get.add_option(OptionNumber::URI_PATH, "big");
        self.transfers
            .observe(&mut self.client, self.now, SERVER, get)
            .unwrap()
    }

    /// Moves datagrams and events at the current instant until nothing
    /// moves.
    fn pump(&mut self) {
        let mut buf = vec![0u8; 2048];
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit(&mut buf).unwrap() {
                moved = true;
                let bytes = buf[..t.len].to_vec();
                let msg = Message::parse(&bytes).unwrap();
                if msg.code().is_request() {
                    self.sent.push((self.now, MessageBuf::from(msg)));
                    if (self.hook)(&msg) == Hook::Hold {
                        self.held.push_back(bytes);
                        continue;
                    }
                } else {
                    self.acks.push(MessageBuf::from(msg));
                }
                self.server_ep.handle_datagram(self.now, CLIENT, &bytes);
            }
            while let Some(ev) = self.server_ep.poll_event() {
                moved = true;
                match ev {
                    Event::Request(r) => {
                        self.server
                            .handle(&mut self.server_ep, self.now, r, &mut self.doc);
                    }
                    other => {
                        let _ = self.server.handle_event(
                            &mut self.server_ep,
                            self.now,
                            other,
                            &mut self.doc,
                        );
                    }
                }
            }
            while let Some(t) = self.server_ep.poll_transmit(&mut buf).unwrap() {
                moved = true;
                self.client.handle_datagram(self.now, SERVER, &buf[..t.len]);
            }
            while let Some(ev) = self.client.poll_event() {
                moved = true;
                if let Some(ce) = self.transfers.handle_event(&mut self.client, self.now, ev) {
                    self.events.push((self.now, ce));
                }
            }
            if !moved {
                return;
            }
        }
        panic!("no quiet at {:?}", self.now);
    }

    /// Hands the oldest held request to the server.
    fn release(&mut self) {
        let d = self.held.pop_front().expect("a held request");
        self.server_ep.handle_datagram(self.now, CLIENT, &d);
        self.pump();
    }

    /// The resource changes to `version` and the server notifies.
    /// Holds back the client's completion GETs (no Observe) for block `num`.
    fn hold_block(&mut self, num: u32) {
        self.hook = Box::new(move |m| {
            if m.observe().is_none() && m.block2().is_some_and(|b| b.num() == num) {
                Hook::Hold
            } else {
                Hook::Serve
            }
        });
    }

    /// Lets every request through again.
    fn serve_all(&mut self) {
        self.hook = Box::new(|_| Hook::Serve);
    }

    /// The resource changes and the application marks it (the server layer
    /// drops its kept copy), but no notification is sent yet (as under the
    /// RFC 7641 §4.5.1 rate limit).
    fn change_silently(&mut self, version: u32, len: usize) {
        self.doc.version = version;
        self.doc.len = len;
        self.server.invalidate(self.res);
    }

    fn change(&mut self, version: u32) -> usize {
        self.doc.version = version;
        let n = self
            .server
            .notify_changed(&mut self.server_ep, self.now, self.res, &mut self.doc);
        self.pump();
        n
    }

    /// Runs timers until `until`.
    fn advance(&mut self, until: Instant) {
        loop {
            let next = [
                self.client.poll_timeout(),
                self.server_ep.poll_timeout(),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .filter(|t| *t <= until)
            .min();
            let Some(next) = next else { break };
            self.now = self.now.max(next);
            self.client.handle_timeout(self.now);
            self.server_ep.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
            self.pump();
        }
        self.now = until;
        self.pump();
    }

    /// The delivered notifications: instant, Observe value, ETag, payload.
    fn notifications(&self) -> Vec<(Instant, u32, Vec<u8>, Vec<u8>)> {
        self.events
            .iter()
            .filter_map(|(at, e)| match e {
                ClientEvent::Notification { message, .. } => Some((
                    *at,
                    message.option(OptionNumber::OBSERVE).map_or(u32::MAX, |v| {
                        v.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b))
                    }),
                    message
                        .option(OptionNumber::ETAG)
                        .unwrap_or_default()
                        .to_vec(),
                    message.payload().to_vec(),
                )),
                _ => None,
            })
            .collect()
    }

    fn failures(&self) -> Vec<(Instant, FailReason)> {
        self.events
            .iter()
            .filter_map(|(at, e)| match e {
                ClientEvent::NotificationFailed { reason, .. } => Some((*at, *reason)),
                _ => None,
            })
            .collect()
    }

    /// The Block2 NUMs of the requests sent from `from` on, with whether
    /// each carried Observe.
    fn gets(&self, from: usize) -> Vec<(Option<u32>, bool)> {
        self.sent[from..]
            .iter()
            .map(|(_, m)| {
                (
                    m.option(OptionNumber::BLOCK2)
                        .and_then(|v| Block::from_value(v).ok())
                        .map(Block::num),
                    m.option(OptionNumber::OBSERVE).is_some(),
                )
            })
            .collect()
    }

    /// Ends observation `id` actively (RFC 7641 §3.6), checks the server forgot the observer, and that
    /// nothing is left once every lifetime has passed.
    #[track_caller]
    fn deregister_and_check_clean(&mut self, id: TransferId) {
        self.transfers
            .cancel_observe(&mut self.client, self.now, id, Deregister::Active)
            .unwrap();
        self.pump();
        assert_eq!(self.server.observer_count(), 0);
        self.assert_clean();
    }

    /// Nothing left once every lifetime has passed.
    #[track_caller]
    fn assert_clean(&mut self) {
        assert!(self.transfers.is_empty(), "{:?}", self.transfers);
        assert_eq!(self.transfers.memory(), 0);
        let until = self.now + std::time::Duration::from_secs(1000);
        self.advance(until);
        assert!(
            self.client.tables().is_empty(),
            "{:?}",
            self.client.tables()
        );
        assert_eq!(self.server.transfer_count(), 0);
    }
}

fn etag(v: u32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

/// RFC 7959 §2.6, §3.4 (Figure 12): a notification carries the first block
/// only; the client GETs blocks 1.. "as if it had caused this first
/// response by a GET request": the registration's options without Observe,
/// and not the observation's token ("the requests for additional blocks
/// cannot make use of the token of the Observation relationship").
#[test]
fn large_notification_is_completed_with_plain_gets() {
    let mut n = Net::new(ClientConfig::default());
    let id = n.observe();
    n.pump();
    // The registration's response is the first notification (RFC 7641
    // §3.2), block-wise too.
    assert_eq!(
        n.notifications(),
        [(T0, 1, etag(1), rep(1, 200))],
        "{:?}",
        n.events
    );
    let token = n.sent[0].1.token().to_vec();
    let before = n.sent.len();
    let t1 = T0 + std::time::Duration::from_secs(5);
    n.advance(t1);
    assert_eq!(n.change(2), 1);
    // One notification (block 0), then GETs for NUM 1, 2, 3 without Observe.
    assert_eq!(
        n.gets(before),
        [(Some(1), false), (Some(2), false), (Some(3), false)]
    );
    for (at, m) in &n.sent[before..] {
        assert_eq!(*at, t1);
        assert_eq!(m.code(), Code::GET);
        assert_eq!(m.ty(), MessageType::Con);
        assert_ne!(
            m.token(),
            &token[..],
            "RFC 7959 §3.4: not the observation's token"
        );
        let opts: Vec<(u16, Vec<u8>)> = m
            .options()
            .map(|o| (o.number.0, o.value.to_vec()))
            .collect();
        let num = Block::from_value(m.option(OptionNumber::BLOCK2).unwrap())
            .unwrap()
            .num();
        // Uri-Path "big", Block2 NUM/0/64: nothing else.
        assert_eq!(
            opts,
            [
                (11, b"big".to_vec()),
                (
                    23,
                    Block::new(num, false, 2).unwrap().to_uint().to_be_bytes()[3..].to_vec()
                ),
            ]
        );
    }
    let notes = n.notifications();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[1], (t1, 2, etag(2), rep(2, 200)));
    // The delivered message keeps the notification's options but not the
    // block ones.
    let last = n
        .events
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            ClientEvent::Notification { id: i, message, .. } => Some((*i, message)),
            _ => None,
        })
        .unwrap();
    assert_eq!(last.0, id);
    assert!(last.1.option(OptionNumber::BLOCK2).is_none());
    assert_eq!(
        last.1.option(OptionNumber::CONTENT_FORMAT),
        Some(&[42u8][..])
    );
    // Progress went under the observation's id.
    let progress: Vec<(Phase, usize)> = n
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            ClientEvent::Progress {
                id: i, phase, done, ..
            } if *i == id => Some((*phase, *done)),
            _ => None,
        })
        .collect();
    assert_eq!(progress.len(), 6, "{progress:?}");
    assert_eq!(
        progress[3..],
        [
            (Phase::Download, 64),
            (Phase::Download, 128),
            (Phase::Download, 192)
        ]
    );
    assert!(n.failures().is_empty());
    n.deregister_and_check_clean(id);
}

/// RFC 7959 §2.6, Figure 13: the client's block size goes on the
/// registration (early negotiation), and its follow-ups use it.
#[test]
fn early_negotiation_on_the_registration() {
    let mut cc = ClientConfig::default();
    cc.block2_szx = Some(1);
    let mut n = Net::new(cc);
    let id = n.observe();
    n.pump();
    let reg = &n.sent[0].1;
    assert_eq!(reg.option(OptionNumber::OBSERVE), Some(&[][..]));
    assert_eq!(
        reg.option(OptionNumber::BLOCK2)
            .and_then(|v| Block::from_value(v).ok()),
        Some(Block::new(0, false, 1).unwrap())
    );
    assert_eq!(n.notifications(), [(T0, 1, etag(1), rep(1, 200))]);
    // RFC 7959 §2.6: later notifications carry their first block at the
    // size the registration asked for (32 bytes, not the server's 64), so
    // the client fetches blocks 1 to 6 of the 200 bytes at that size.
    let before = n.sent.len();
    let t1 = T0 + std::time::Duration::from_secs(5);
    n.advance(t1);
    assert_eq!(n.change(2), 1);
    assert_eq!(
        n.gets(before),
        (1..=6).map(|num| (Some(num), false)).collect::<Vec<_>>()
    );
    for (_, m) in &n.sent[before..] {
        let b = Block::from_value(m.option(OptionNumber::BLOCK2).unwrap()).unwrap();
        assert_eq!(b.szx(), 1);
    }
    assert_eq!(n.notifications()[1], (t1, 2, etag(2), rep(2, 200)));
    n.transfers.cancel(&mut n.client, n.now, id).unwrap();
    n.assert_clean();
}

/// RFC 7959 §2.6: "the reassembling client MUST compare the ETag Options";
/// a block of another version is not assembled. The notification's
/// completion is abandoned (and reported), and the notification of the new
/// version (RFC 7641 §4.2) restarts it: the newest value arrives whole.
#[test]
fn etag_change_mid_fetch_restarts_from_the_newest_notification() {
    // The resource changes without a notification yet (a server rate
    // limit, RFC 7641 §4.5.1); the held GET for block 2 of version 2 gets
    // block 2 of version 3.
    let (n, id, t1) = completion_broken(2, 2, 200);
    assert_eq!(n.failures(), [(t1, FailReason::RepresentationChanged)]);
    assert_eq!(n.notifications().len(), 1, "version 2 is not delivered");
    assert_eq!(n.transfers.len(), 1, "no completion left running");
    newest_arrives_whole(n, id, t1, 200);
}

/// Observes, notifies version 2 at `t1_secs` while holding the completion's
/// GET for block `held`, then changes the resource to version 3 of
/// `v3_len` bytes without a notification and lets the held GET through.
fn completion_broken(t1_secs: u64, held: u32, v3_len: usize) -> (Net, TransferId, Instant) {
    let mut n = Net::new(ClientConfig::default());
    let id = n.observe();
    n.pump();
    let t1 = T0 + std::time::Duration::from_secs(t1_secs);
    n.advance(t1);
    n.hold_block(held);
    n.change(2);
    assert_eq!(n.held.len(), 1);
    n.change_silently(3, v3_len);
    n.serve_all();
    n.release();
    (n, id, t1)
}

/// A second later version 3 is notified and arrives whole; then the
/// observation ends cleanly.
fn newest_arrives_whole(mut n: Net, id: TransferId, t1: Instant, len: usize) {
    let t2 = t1 + std::time::Duration::from_secs(1);
    n.advance(t2);
    n.change(3);
    let notes = n.notifications();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[1], (t2, 3, etag(3), rep(3, len)));
    n.deregister_and_check_clean(id);
}

/// RFC 7641 §3.4: a newer notification arriving while an older one is
/// being completed supersedes it; the older completion is abandoned and
/// never delivered, even when its last block comes back later.
#[test]
fn newer_notification_mid_fetch_supersedes_the_older() {
    let mut n = Net::new(ClientConfig::default());
    let id = n.observe();
    n.pump();
    let t1 = T0 + std::time::Duration::from_secs(3);
    n.advance(t1);
    n.hold_block(1);
    n.change(2);
    let held_for_v2 = n.sent.len() - 1;
    assert_eq!(n.held.len(), 1);
    // Version 3 is notified while version 2's block 1 is outstanding.
    n.serve_all();
    n.change(3);
    // The old GET reaches the server only now; its answer finds no
    // exchange in the client (cancelled), and nothing is delivered for it.
    n.release();
    let notes = n.notifications();
    assert_eq!(
        notes
            .iter()
            .map(|x| (x.0, x.1, x.2.clone()))
            .collect::<Vec<_>>(),
        [(T0, 1, etag(1)), (t1, 3, etag(3))]
    );
    assert_eq!(notes[1].3, rep(3, 200));
    assert!(n.failures().is_empty());
    // The abandoned exchange is not retransmitted.
    let until = t1 + std::time::Duration::from_secs(300);
    n.advance(until);
    let old_mid = n.sent[held_for_v2].1.message_id();
    assert_eq!(
        n.sent
            .iter()
            .filter(|(_, m)| m.message_id() == old_mid && m.code() == Code::GET)
            .count(),
        1
    );
    n.deregister_and_check_clean(id);
}

/// RFC 7641 §3.6: cancelling (actively or passively) also ends the
/// completion in flight: no event follows, and its GET is not
/// retransmitted.
#[test]
fn cancel_during_fetch_active_and_passive() {
    for how in [Deregister::Active, Deregister::Passive] {
        let mut n = Net::new(ClientConfig::default());
        let id = n.observe();
        n.pump();
        let t1 = T0 + std::time::Duration::from_secs(1);
        n.advance(t1);
        n.hold_block(1);
        n.change(2);
        let events = n.events.len();
        let sent = n.sent.len();
        n.transfers
            .cancel_observe(&mut n.client, n.now, id, how)
            .unwrap();
        assert!(n.transfers.is_empty());
        n.pump();
        n.serve_all();
        n.release();
        let t2 = t1 + std::time::Duration::from_secs(300);
        n.advance(t2);
        let after: Vec<(Option<u32>, bool)> = n.gets(sent);
        match how {
            // The deregistration: GET with Observe:1 and the registration's
            // block option, nothing else.
            Deregister::Active => {
                assert_eq!(after.len(), 1);
                assert_eq!(n.sent[sent].0, t1);
                assert_eq!(
                    n.sent[sent].1.option(OptionNumber::OBSERVE),
                    Some(&[1u8][..])
                );
                assert_eq!(n.server.observer_count(), 0);
            }
            Deregister::Passive => {
                assert!(after.is_empty(), "{after:?}");
                // The next notification gets a Reset (RFC 7641 §3.6).
                n.change(3);
                assert!(n.acks.iter().any(|m| m.ty() == MessageType::Rst));
                assert_eq!(n.server.observer_count(), 0);
            }
        }
        assert_eq!(n.events.len(), events, "{:?}", &n.events[events..]);
        n.assert_clean();
    }
}

/// RFC 7959 §2.6 with the layer's bound: a representation above
/// `ClientConfig::max_body` is not reassembled; the observation stays open
/// and a smaller value is delivered later.
#[test]
fn notification_above_the_size_limit_fails_and_the_observation_goes_on() {
    let mut cc = ClientConfig::default();
    cc.max_body = 150;
    let mut n = Net::new(cc);
    let id = n.observe();
    n.pump();
    assert_eq!(n.failures(), [(T0, FailReason::BodyTooLarge)]);
    assert!(n.notifications().is_empty());
    // The notification's Size2 (RFC 7959 §4) told the total: no GET for
    // the rest at all.
    assert_eq!(n.gets(0), [(None, true)]);
    let t1 = T0 + std::time::Duration::from_secs(4);
    n.advance(t1);
    n.doc.len = 100;
    n.change(2);
    assert_eq!(n.notifications(), [(t1, 2, etag(2), rep(2, 100))]);
    n.deregister_and_check_clean(id);
}

/// Bounds: observations count towards `max_transfers`, and the layer
/// refuses more (with no endpoint request made).
#[test]
fn observations_are_bounded_by_max_transfers() {
    let mut cc = ClientConfig::default();
    cc.max_transfers = 1;
    let mut n = Net::new(cc);
    let id = n.observe();
    let mut get = MessageBuf::new(MessageType::Con, Code::GET);
    get.add_option(OptionNumber::URI_PATH, "big");
    assert_eq!(
        n.transfers
            .observe(&mut n.client, n.now, SERVER, get.clone())
            .unwrap_err(),
        ClientError::NoCapacity
    );
    assert_eq!(
        n.transfers
            .request(&mut n.client, n.now, SERVER, get)
            .unwrap_err(),
        ClientError::NoCapacity
    );
    assert_eq!(n.client.tables().requests, 1);
    // The completion of a notification does not need a slot of its own.
    n.pump();
    assert_eq!(n.notifications(), [(T0, 1, etag(1), rep(1, 200))]);
    n.deregister_and_check_clean(id);
}

/// RFC 7641 §3.2: a final response without Observe ends the observation;
/// when it carries the first block, the rest is fetched and it arrives
/// whole as the observation's `Response`.
#[test]
fn final_block_wise_response_ends_the_observation_whole() {
    let mut n = Net::new(ClientConfig::default());
    // A resource that is not observable answers without Observe.
    n.server
        .add(Resource::new("/plain").get(|d: &mut Doc, _| {
            Reply::content(ContentFormat::OCTET_STREAM, rep(d.version, d.len))
        }))
        .unwrap();
    let mut get = MessageBuf::new(MessageType::Con, Code::GET);
    get.add_option(OptionNumber::URI_PATH, "plain");
    let id = n
        .transfers
        .observe(&mut n.client, n.now, SERVER, get)
        .unwrap();
    n.pump();
    let got: Vec<(Instant, Vec<u8>)> = n
        .events
        .iter()
        .filter_map(|(at, e)| match e {
            ClientEvent::Response { id: i, message, .. } if *i == id => {
                Some((*at, message.payload().to_vec()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(got, [(T0, rep(1, 200))]);
    assert!(n.notifications().is_empty());
    assert_eq!(
        n.gets(0),
        [
            (None, true),
            (Some(1), false),
            (Some(2), false),
            (Some(3), false)
        ]
    );
    assert_eq!(
        n.sent[0].1.option(OptionNumber::OBSERVE),
        Some(&[][..]),
        "{:?}",
        Observe::REGISTER
    );
    n.assert_clean();
}

/// RFC 7959 §2.6 with a representation that shrinks mid-completion: the
/// server answers the GET for a block past the new end with an error
/// (4.02 here). That answer is not a notification: the completion fails
/// (`ErrorResponse`), nothing is delivered for it, and the observation goes
/// on. (Found by the `endpoint_pair` fuzzer, block-wise scenario.)
#[test]
fn error_answer_to_a_completion_is_not_a_notification() {
    // Version 3 has 100 bytes (blocks 0 and 1): the held GET for block 3
    // of version 2 is answered with an error.
    let (n, id, t1) = completion_broken(6, 3, 100);
    assert_eq!(
        n.failures(),
        [(t1, FailReason::ErrorResponse(Code::BAD_OPTION))]
    );
    assert_eq!(n.notifications(), [(T0, 1, etag(1), rep(1, 200))]);
    assert_eq!(n.transfers.len(), 1, "the observation goes on");
    newest_arrives_whole(n, id, t1, 100);
}

/// RFC 7959 §2.6 with the server's representation cache: the GETs that
/// complete a large notification are sliced from the representation the
/// notification was cut from, so the handler runs once per change (not
/// once more for the completion), and the blocks share the notification's
/// ETag.
#[test]
fn notification_completion_is_sliced_from_the_notified_representation() {
    let mut n = Net::new(ClientConfig::default());
    let id = n.observe();
    n.pump();
    // The registration's answer was kept for its own follow-ups.
    assert_eq!(n.doc.runs, 1);
    let t1 = T0 + std::time::Duration::from_secs(5);
    n.advance(t1);
    let before = n.sent.len();
    assert_eq!(n.change(2), 1);
    assert_eq!(
        n.gets(before),
        [(Some(1), false), (Some(2), false), (Some(3), false)]
    );
    assert_eq!(
        n.notifications().last(),
        Some(&(t1, 2, etag(2), rep(2, 200)))
    );
    assert_eq!(n.doc.runs, 2, "the completion ran the handler again");
    // The next change is notified and completed from its own copy.
    assert_eq!(n.change(3), 1);
    assert_eq!(
        n.notifications().last(),
        Some(&(t1, 3, etag(3), rep(3, 200)))
    );
    assert_eq!(n.doc.runs, 3);
    assert!(n.failures().is_empty());
    n.deregister_and_check_clean(id);
}
