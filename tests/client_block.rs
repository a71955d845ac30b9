//! Client-side block-wise transfers through `coap_proto::client::Transfers`
//! (RFC 7959), against an in-memory server `Endpoint` running the resource
//! layer (`coap_proto::server::Server`), or a scripted answer where a test
//! needs a server to misbehave or answer in a way `Server` does not.
//!
//! The ETSI plugtest cases (the CoAP plugtest test descriptions, as kept in
//! F-Interop's ttproto; from the client's side here):
//! - TD_COAP_BLOCK_01: GET blockwise transfer for a large resource, early
//!   negotiation (RFC 7959 §2.2-2.4)
//! - TD_COAP_BLOCK_02: the same, late negotiation
//! - TD_COAP_BLOCK_03: PUT blockwise transfer for a large resource
//!   (§2.2, §2.3, §2.5)
//! - TD_COAP_BLOCK_04: POST blockwise transfer for a large resource
//! - TD_COAP_BLOCK_05: POST with two-way blockwise transfer (Block1, then
//!   the response in Block2; the server may lower the Block1 SZX in its
//!   first 2.31 and the client then resumes at NUM 2^(DES_SZX-ACT_SZX))
//! - TD_COAP_BLOCK_06: GET with early negotiation of 16-byte blocks
//!
//! Every test ends with no state left: the layer empty, and both endpoints'
//! tables empty once EXCHANGE_LIFETIME has passed.

use coap_proto::client::{
    ClientConfig, ClientError, ClientEvent, FailReason, OnEtagChange, Phase, RequestTags,
    TransferId, Transfers,
};
use coap_proto::endpoint::{Config, Endpoint, Event};
use coap_proto::server::{Reply, Resource, Server, ServerConfig};
use coap_proto::{
    Block, Code, ContentFormat, Instant, Message, MessageBuf, MessageType, OptionNumber,
};

// ----- harness ----------------------------------------------------------------

const CLIENT: u32 = 1;
const SERVER: u32 = 2;

/// Deterministic, non-repeating-looking test bytes.
fn body(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[1] ^ (i / 251) as u8)
        .collect()
}

/// Another version of the same representation (same length).
fn variant(v: u32, n: usize) -> Vec<u8> {
    body(n)
        .into_iter()
        .map(|b| b.wrapping_add(v as u8))
        .collect()
}

const LARGE: usize = 2440;

/// The server application state.
#[derive(Default)]
struct Store {
    /// /large: the representation, its version (the explicit ETag) and
    /// format; `gets` counts GETs; at the GET numbers in `change_at` the
    /// version goes up before answering; from `format_at` on, the format is
    /// JSON with the same ETag.
    large: Vec<u8>,
    version: u32,
    gets: u32,
    change_at: Vec<u32>,
    format_at: Option<u32>,
    update: Vec<u8>,
    created: Vec<Vec<u8>>,
    posts: u32,
}

fn large_reply(st: &mut Store) -> Reply {
    st.gets += 1;
    if st.change_at.contains(&st.gets) {
        st.version += 1;
        st.large = variant(st.version, st.large.len());
    }
    let format = match st.format_at {
        Some(n) if st.gets >= n => ContentFormat::JSON,
        _ => ContentFormat::TEXT_PLAIN,
    };
    let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
    m.add_option(OptionNumber::ETAG, (st.version + 1).to_be_bytes());
    m.add_option_uint(OptionNumber::CONTENT_FORMAT, u32::from(format.0));
    m.set_payload(st.large.clone());
    Reply::Now(m)
}

fn make_server(cfg: ServerConfig) -> Server<u32, Store> {
    let mut s: Server<u32, Store> = Server::new(cfg);
    // `large_reply` changes the representation by handler call (the
    // scripted changes below), so the layer must run it for every block.
    s.add(
        Resource::new("/large")
            .uncached()
            .get(|st: &mut Store, _| large_reply(st)),
    )
    .unwrap();
    s.add(Resource::new("/small").get(|_, _| Reply::content(ContentFormat::TEXT_PLAIN, "hello")))
        .unwrap();
    s.add(
        Resource::new("/large-update")
            .get(|st: &mut Store, _| Reply::content(ContentFormat::TEXT_PLAIN, st.update.clone()))
            .put(|st: &mut Store, r| {
                st.update = r.body.to_vec();
                Reply::status(Code::CHANGED)
            }),
    )
    .unwrap();
    s.add(
        Resource::new("/large-create")
            .max_body(8192)
            .post(|st: &mut Store, r| {
                st.created.push(r.body.to_vec());
                let mut m = MessageBuf::new(MessageType::Ack, Code::CREATED);
                m.add_option(OptionNumber::LOCATION_PATH, "large-create");
                m.add_option(OptionNumber::LOCATION_PATH, st.created.len().to_string());
                Reply::Now(m)
            }),
    )
    .unwrap();
    s.add(Resource::new("/large-post").post(|st: &mut Store, r| {
        st.posts += 1;
        // The upload reversed, as a large response.
        let mut out = r.body.to_vec();
        out.reverse();
        let mut m = MessageBuf::new(MessageType::Ack, Code::CHANGED);
        m.set_payload(out);
        Reply::Now(m)
    }))
    .unwrap();
    s.add(
        Resource::new("/query").method(Code::FETCH, |st: &mut Store, r| {
            // The FETCH body, then the large representation: a follow-up
            // without the body would get another representation.
            let mut out = r.body.to_vec();
            out.extend_from_slice(&st.large);
            Reply::content(ContentFormat::OCTET_STREAM, out)
        }),
    )
    .unwrap();
    s
}

/// What the test script does with a request datagram before the server
/// sees it.
enum Hooked {
    /// Hand it to the server.
    Serve,
    /// Lose it.
    Drop,
    /// Answer it directly (piggybacked) with this code, options and payload.
    Answer(MessageBuf),
    /// Answer it with a Reset.
    Reset,
}

type Hook = Box<dyn FnMut(&Message<'_>) -> Hooked>;

struct Net {
    now: Instant,
    client: Endpoint<u32>,
    server_ep: Endpoint<u32>,
    server: Server<u32, Store>,
    store: Store,
    transfers: Transfers<u32>,
    /// Every request datagram the client sent, in order.
    sent: Vec<MessageBuf>,
    hook: Hook,
    /// Loses a server answer when it returns true.
    drop_answer: Box<dyn FnMut(&Message<'_>) -> bool>,
}

impl Net {
    fn new(client: ClientConfig, server: ServerConfig) -> Self {
        Self {
            now: Instant::from_secs(1),
            client: Endpoint::new(Config::default(), 0xc11e),
            server_ep: Endpoint::new(Config::default(), 0x5e4e),
            server: make_server(server),
            store: Store {
                large: body(LARGE),
                update: body(10),
                ..Store::default()
            },
            transfers: Transfers::new(client),
            sent: Vec::new(),
            hook: Box::new(|_| Hooked::Serve),
            drop_answer: Box::new(|_| false),
        }
    }

    fn default() -> Self {
        Self::new(ClientConfig::default(), ServerConfig::default())
    }

    fn start(&mut self, msg: MessageBuf) -> TransferId {
        self.transfers
            .request(&mut self.client, self.now, SERVER, msg)
            .expect("request accepted")
    }

    /// Moves datagrams and events until the transfers are done (advancing
    /// virtual time to the next deadline whenever nothing moves); returns
    /// what the layer reported.
    fn run(&mut self) -> Vec<ClientEvent<u32>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        for _ in 0..200_000 {
            let mut moved = false;
            let mut to_client: Vec<Vec<u8>> = Vec::new();
            while let Some(t) = self.client.poll_transmit(&mut buf).unwrap() {
                moved = true;
                let bytes = buf[..t.len].to_vec();
                let msg = Message::parse(&bytes).unwrap();
                if !msg.code().is_request() {
                    self.server_ep.handle_datagram(self.now, CLIENT, &bytes);
                    continue;
                }
                self.sent.push(MessageBuf::from(msg));
                match (self.hook)(&msg) {
                    Hooked::Serve => self.server_ep.handle_datagram(self.now, CLIENT, &bytes),
                    Hooked::Drop => {}
                    Hooked::Answer(mut m) => {
                        let con = msg.ty() == MessageType::Con;
                        m.set_ty(if con {
                            MessageType::Ack
                        } else {
                            MessageType::Non
                        });
                        m.set_message_id(if con {
                            msg.message_id()
                        } else {
                            !msg.message_id()
                        });
                        m.set_token(msg.token()).unwrap();
                        to_client.push(m.to_bytes().unwrap());
                    }
                    Hooked::Reset => {
                        let mut m = MessageBuf::new(MessageType::Rst, Code::EMPTY);
                        m.set_message_id(msg.message_id());
                        to_client.push(m.to_bytes().unwrap());
                    }
                }
            }
            while let Some(ev) = self.server_ep.poll_event() {
                if let Event::Request(r) = ev {
                    self.server
                        .handle(&mut self.server_ep, self.now, r, &mut self.store);
                }
            }
            while let Some(t) = self.server_ep.poll_transmit(&mut buf).unwrap() {
                moved = true;
                let bytes = buf[..t.len].to_vec();
                if !(self.drop_answer)(&Message::parse(&bytes).unwrap()) {
                    to_client.push(bytes);
                }
            }
            for d in to_client {
                moved = true;
                self.client.handle_datagram(self.now, SERVER, &d);
            }
            while let Some(ev) = self.client.poll_event() {
                if let Some(ce) = self.transfers.handle_event(&mut self.client, self.now, ev) {
                    out.push(ce);
                }
            }
            if moved {
                continue;
            }
            if self.transfers.is_empty() {
                return out;
            }
            let next = [self.client.poll_timeout(), self.server_ep.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .expect("a running transfer always waits on a timer or a datagram");
            self.now = self.now.max(next);
            self.client.handle_timeout(self.now);
            self.server_ep.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
        }
        panic!("no end after 200000 rounds");
    }

    /// Asserts that nothing is left once every lifetime has passed.
    #[track_caller]
    fn assert_clean(&mut self) {
        assert!(self.transfers.is_empty(), "{:?}", self.transfers);
        assert_eq!(self.transfers.memory(), 0);
        for _ in 0..100 {
            let next = [
                self.client.poll_timeout(),
                self.server_ep.poll_timeout(),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { break };
            self.now = self.now.max(next);
            self.client.handle_timeout(self.now);
            self.server_ep.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
        }
        assert!(
            self.client.tables().is_empty(),
            "{:?}",
            self.client.tables()
        );
        assert!(
            self.server_ep.tables().is_empty(),
            "{:?}",
            self.server_ep.tables()
        );
        assert_eq!(self.server.transfer_count(), 0);
        assert_eq!(self.server.transfer_memory(), 0);
    }

    /// The requests sent, as (code, Block1, Block2, payload length).
    fn shape(&self) -> Vec<(Code, Option<Block>, Option<Block>, usize)> {
        self.sent
            .iter()
            .map(|m| {
                (
                    m.code(),
                    blk(m, OptionNumber::BLOCK1),
                    blk(m, OptionNumber::BLOCK2),
                    m.payload().len(),
                )
            })
            .collect()
    }
}

fn blk(m: &MessageBuf, n: OptionNumber) -> Option<Block> {
    m.option(n).map(|v| Block::from_value(v).unwrap())
}

#[allow(clippy::unnecessary_wraps)] // compared with optional options
fn b(num: u32, more: bool, szx: u8) -> Option<Block> {
    Some(Block::new(num, more, szx).unwrap())
}

fn uint(m: &MessageBuf, n: OptionNumber) -> Option<u32> {
    m.option(n).map(|v| coap_proto::decode_uint(v).unwrap())
}

fn req(code: Code, path: &str) -> MessageBuf {
    let mut m = MessageBuf::new(MessageType::Con, code);
    for seg in path.trim_start_matches('/').split('/') {
        m.add_option(OptionNumber::URI_PATH, seg);
    }
    m
}

fn with_body(code: Code, path: &str, data: &[u8]) -> MessageBuf {
    let mut m = req(code, path);
    m.add_option_uint(OptionNumber::CONTENT_FORMAT, 0);
    m.set_payload(data.to_vec());
    m
}

/// The one final event of `id`: its response.
#[track_caller]
fn response(events: &[ClientEvent<u32>], id: TransferId) -> &MessageBuf {
    let finals: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Response { id: i, .. } | ClientEvent::Failed { id: i, .. } if *i == id))
        .collect();
    assert_eq!(finals.len(), 1, "exactly one final event: {events:?}");
    match finals[0] {
        ClientEvent::Response { message, peer, .. } => {
            assert_eq!(*peer, SERVER);
            message
        }
        other => panic!("not a response: {other:?}"),
    }
}

#[track_caller]
fn failure(events: &[ClientEvent<u32>], id: TransferId) -> FailReason {
    let mut reasons = events.iter().filter_map(|e| match e {
        ClientEvent::Failed { id: i, reason } if *i == id => Some(*reason),
        ClientEvent::Response { id: i, message, .. } if *i == id => {
            panic!("a response: {message:?}")
        }
        _ => None,
    });
    let r = reasons.next().expect("a Failed event");
    assert!(reasons.next().is_none());
    r
}

fn progress(events: &[ClientEvent<u32>], id: TransferId) -> Vec<(Phase, usize, Option<usize>)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Progress {
                id: i,
                phase,
                done,
                total,
            } if *i == id => Some((*phase, *done, *total)),
            _ => None,
        })
        .collect()
}

fn client_cfg(f: impl FnOnce(&mut ClientConfig)) -> ClientConfig {
    let mut c = ClientConfig::default();
    f(&mut c);
    c
}

// ----- Block2: the ETSI cases ----------------------------------------------------

/// TD_COAP_BLOCK_01 (early negotiation, RFC 7959 §2.4): the first GET
/// carries Block2 NUM=0, M=0, SZX=2 (64 bytes) and Size2:0 (§4); every
/// further GET asks for NUM+1 at that size with the same options; the body
/// arrives whole in one event.
#[test]
fn td_coap_block_01_get_early_negotiation() {
    let mut n = Net::new(
        client_cfg(|c| c.block2_szx = Some(2)),
        ServerConfig::default(),
    );
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    let m = response(&ev, id);
    assert_eq!((m.code(), m.payload()), (Code::CONTENT, &body(LARGE)[..]));
    assert_eq!(m.option(OptionNumber::ETAG), Some(&1u32.to_be_bytes()[..]));
    assert_eq!(uint(m, OptionNumber::CONTENT_FORMAT), Some(0));
    assert!(m.option(OptionNumber::BLOCK2).is_none() && m.option(OptionNumber::SIZE2).is_none());
    let blocks = LARGE.div_ceil(64);
    let shape = n.shape();
    assert_eq!(shape.len(), blocks);
    for (i, s) in shape.iter().enumerate() {
        assert_eq!(
            *s,
            (Code::GET, None, b(i as u32, false, 2), 0),
            "request {i}"
        );
    }
    assert_eq!(
        uint(&n.sent[0], OptionNumber::SIZE2),
        Some(0),
        "Size2:0 asks for the size (§4)"
    );
    for r in &n.sent {
        assert_eq!(r.option(OptionNumber::URI_PATH), Some(&b"large"[..]));
        assert!(
            r.option(OptionNumber::REQUEST_TAG).is_none(),
            "GET needs no Request-Tag"
        );
    }
    // One progress event per block but the last, with the total from Size2.
    let p = progress(&ev, id);
    assert_eq!(p.len(), blocks - 1);
    assert_eq!(p[0], (Phase::Download, 64, Some(LARGE)));
    assert!(
        p.iter()
            .enumerate()
            .all(|(i, &(_, d, t))| d == 64 * (i + 1) && t == Some(LARGE))
    );
    n.assert_clean();
}

/// TD_COAP_BLOCK_02 (late negotiation, §2.4): the first GET has no Block2;
/// the server answers 1024-byte blocks and the client continues with
/// Block2 1/0/1024 and so on.
#[test]
fn td_coap_block_02_get_late_negotiation() {
    let mut n = Net::default();
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    assert_eq!(response(&ev, id).payload(), &body(LARGE)[..]);
    assert_eq!(
        n.shape(),
        [
            (Code::GET, None, None, 0),
            (Code::GET, None, b(1, false, 6), 0),
            (Code::GET, None, b(2, false, 6), 0),
        ]
    );
    assert_eq!(
        progress(&ev, id),
        [
            (Phase::Download, 1024, Some(LARGE)),
            (Phase::Download, 2048, Some(LARGE))
        ]
    );
    n.assert_clean();
}

/// TD_COAP_BLOCK_06: early negotiation of the smallest size, 16 bytes.
#[test]
fn td_coap_block_06_get_sixteen_byte_blocks() {
    let mut n = Net::new(
        client_cfg(|c| c.block2_szx = Some(0)),
        ServerConfig::default(),
    );
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    assert_eq!(response(&ev, id).payload(), &body(LARGE)[..]);
    assert_eq!(n.sent.len(), LARGE.div_ceil(16));
    assert!(
        n.shape()
            .iter()
            .enumerate()
            .all(|(i, s)| s.2 == b(i as u32, false, 0))
    );
    n.assert_clean();
}

/// RFC 7959 §2.3/§2.4: the client asks for 1024 bytes, the server uses its
/// smaller preferred size (64); "the next request MUST move SZX down to the
/// size given in the response".
#[test]
fn block2_honours_the_servers_smaller_size() {
    let mut scfg = ServerConfig::default();
    scfg.block2_szx = 2;
    let mut n = Net::new(client_cfg(|c| c.block2_szx = Some(6)), scfg);
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    assert_eq!(response(&ev, id).payload(), &body(LARGE)[..]);
    let shape = n.shape();
    assert_eq!(shape[0].2, b(0, false, 6));
    assert!(
        shape[1..]
            .iter()
            .enumerate()
            .all(|(i, s)| s.2 == b(i as u32 + 1, false, 2))
    );
    n.assert_clean();
}

/// A response that fits one message is delivered as it is, whatever the
/// Block2 request said; no progress events.
#[test]
fn small_response_is_one_exchange() {
    let mut n = Net::new(
        client_cfg(|c| c.block2_szx = Some(4)),
        ServerConfig::default(),
    );
    let id = n.start(req(Code::GET, "/small"));
    let ev = n.run();
    assert_eq!(response(&ev, id).payload(), b"hello");
    assert_eq!(ev.len(), 1);
    assert_eq!(n.sent.len(), 1);
    n.assert_clean();
}

/// RFC 7959 §2.4: follow-ups carry the same options as the first request
/// (Accept, Uri-Query, unknown elective options), except Observe (§2.6: the
/// rest of a notification is fetched with plain GETs), and for FETCH the
/// same body (RFC 8132: the payload is part of the request).
#[test]
fn follow_ups_repeat_the_options_but_observe() {
    let mut n = Net::default();
    // A scripted server without Observe support: a plain Block2 answer.
    let data = body(300);
    let d = data.clone();
    n.hook = Box::new(move |m| {
        let blk = m.block2().unwrap_or(Block::new(0, false, 6).unwrap());
        let size = 128;
        let start = blk.num() as usize * size;
        let end = (start + size).min(d.len());
        let mut a = MessageBuf::new(MessageType::Ack, Code::CONTENT);
        a.add_option_uint(
            OptionNumber::BLOCK2,
            Block::new(blk.num(), end < d.len(), 3).unwrap().to_uint(),
        );
        a.set_payload(d[start..end].to_vec());
        Hooked::Answer(a)
    });
    let mut get = req(Code::GET, "/obs");
    get.add_option_uint(OptionNumber::OBSERVE, 0);
    get.add_option_uint(OptionNumber::ACCEPT, 42);
    get.add_option(OptionNumber::URI_QUERY, "q=1");
    get.add_option(OptionNumber(65000), "x");
    let id = n.start(get);
    let ev = n.run();
    assert_eq!(response(&ev, id).payload(), &data[..]);
    assert_eq!(n.sent.len(), 3);
    assert_eq!(uint(&n.sent[0], OptionNumber::OBSERVE), Some(0));
    for r in &n.sent[1..] {
        assert!(
            r.option(OptionNumber::OBSERVE).is_none(),
            "no Observe in follow-ups (§2.6)"
        );
        assert_eq!(uint(r, OptionNumber::ACCEPT), Some(42));
        assert_eq!(r.option(OptionNumber::URI_QUERY), Some(&b"q=1"[..]));
        assert_eq!(r.option(OptionNumber(65000)), Some(&b"x"[..]));
    }
    n.assert_clean();

    let mut n = Net::default();
    let mut fetch = req(Code::FETCH, "/query");
    fetch.set_payload(b"filter=1".to_vec());
    let id = n.start(fetch);
    let ev = n.run();
    let mut want = b"filter=1".to_vec();
    want.extend_from_slice(&body(LARGE));
    assert_eq!(response(&ev, id).payload(), &want[..]);
    assert!(n.sent.len() > 1 && n.sent.iter().all(|r| r.payload() == b"filter=1"));
    n.assert_clean();
}

/// NON requests (RFC 7252 §4.3) work the same way.
#[test]
fn block2_over_non() {
    let mut n = Net::default();
    let mut get = req(Code::GET, "/large");
    get.set_ty(MessageType::Non);
    let id = n.start(get);
    let ev = n.run();
    assert_eq!(response(&ev, id).payload(), &body(LARGE)[..]);
    assert!(n.sent.iter().all(|r| r.ty() == MessageType::Non));
    n.assert_clean();
}

// ----- Block2: ETag and Content-Format across blocks ------------------------------

/// RFC 7959 §2.4: "the client ... MUST compare ETag Options. If the ETag
/// Options do not match in a GET transfer, the requester has the option of
/// attempting to retrieve fresh values for the blocks it retrieved first."
/// The representation changes before the third block: the transfer starts
/// again from block 0 and delivers the new version, whole.
#[test]
fn etag_change_restarts_a_get() {
    let mut n = Net::new(
        client_cfg(|c| c.block2_szx = Some(4)),
        ServerConfig::default(),
    );
    n.store.change_at = vec![3];
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    let m = response(&ev, id);
    assert_eq!(m.payload(), &variant(1, LARGE)[..]);
    assert_eq!(m.option(OptionNumber::ETAG), Some(&2u32.to_be_bytes()[..]));
    let nums: Vec<u32> = n.shape().iter().map(|s| s.2.unwrap().num()).collect();
    let blocks = LARGE.div_ceil(256) as u32;
    let mut want = vec![0, 1, 2];
    want.extend(0..blocks);
    assert_eq!(nums, want);
    // The restart asks for the size again, and says so in a progress event.
    assert_eq!(uint(&n.sent[3], OptionNumber::SIZE2), Some(0));
    assert!(progress(&ev, id).contains(&(Phase::Download, 0, None)));
    n.assert_clean();
}

/// The same change with `OnEtagChange::Fail`.
#[test]
fn etag_change_fails_when_configured() {
    let mut n = Net::new(
        client_cfg(|c| {
            c.block2_szx = Some(4);
            c.on_etag_change = OnEtagChange::Fail;
        }),
        ServerConfig::default(),
    );
    n.store.change_at = vec![3];
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    assert_eq!(failure(&ev, id), FailReason::RepresentationChanged);
    assert_eq!(n.sent.len(), 3);
    n.assert_clean();
}

/// A representation that changes faster than it can be fetched: after
/// `max_restarts` restarts the transfer fails (RFC 7959 §2.4: such servers
/// "may thereby make it impossible for a client to ever retrieve a
/// consistent set of blocks").
#[test]
fn etag_keeps_changing_gives_up() {
    let mut n = Net::new(
        client_cfg(|c| {
            c.block2_szx = Some(4);
            c.max_restarts = 2;
        }),
        ServerConfig::default(),
    );
    n.store.change_at = (1..100).filter(|g| g % 2 == 0).collect();
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    assert_eq!(failure(&ev, id), FailReason::RepresentationChanged);
    assert_eq!(n.sent.len(), 6, "3 attempts of 2 blocks each");
    n.assert_clean();
}

/// RFC 7959 §2.3: "If blocks of a response body arrive with different
/// Content-Format Options, it is up to the client how to handle this error
/// (it will typically abort any ongoing block-wise transfer)". Same ETag,
/// another format from the second block: treated as a changed
/// representation (restart, here to fail since it keeps the new format).
#[test]
fn content_format_change_is_a_changed_representation() {
    let mut n = Net::new(
        client_cfg(|c| {
            c.block2_szx = Some(4);
            c.on_etag_change = OnEtagChange::Fail;
        }),
        ServerConfig::default(),
    );
    n.store.format_at = Some(2);
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    assert_eq!(failure(&ev, id), FailReason::RepresentationChanged);
    assert_eq!(n.sent.len(), 2);
    n.assert_clean();

    // With restarts, the new format from block 0 on is consistent.
    let mut n = Net::new(
        client_cfg(|c| c.block2_szx = Some(4)),
        ServerConfig::default(),
    );
    n.store.format_at = Some(2);
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    let m = response(&ev, id);
    assert_eq!(
        (uint(m, OptionNumber::CONTENT_FORMAT), m.payload()),
        (Some(50), &body(LARGE)[..])
    );
    n.assert_clean();
}

// ----- Block2: limits and misbehaving servers ------------------------------------

/// Bounded reassembly: Size2 above `max_body` fails the transfer after the
/// first block; without Size2 the data itself hits the limit.
#[test]
fn response_body_limit() {
    let mut n = Net::new(client_cfg(|c| c.max_body = 2000), ServerConfig::default());
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    assert_eq!(failure(&ev, id), FailReason::BodyTooLarge);
    assert_eq!(n.sent.len(), 1, "Size2 on the first block told");
    n.assert_clean();

    let mut n = Net::new(client_cfg(|c| c.max_body = 2000), ServerConfig::default());
    let data = body(3000);
    n.hook = Box::new(move |m| {
        let num = m.block2().map_or(0, Block::num);
        let start = num as usize * 512;
        let end = (start + 512).min(data.len());
        let mut a = MessageBuf::new(MessageType::Ack, Code::CONTENT);
        a.add_option_uint(
            OptionNumber::BLOCK2,
            Block::new(num, end < data.len(), 5).unwrap().to_uint(),
        );
        a.set_payload(data[start..end].to_vec());
        Hooked::Answer(a)
    });
    let id = n.start(req(Code::GET, "/x"));
    let ev = n.run();
    assert_eq!(failure(&ev, id), FailReason::BodyTooLarge);
    assert_eq!(n.sent.len(), 4);
    n.assert_clean();
}

/// Total memory of all transfers is bounded too.
#[test]
fn memory_limit() {
    let mut n = Net::new(client_cfg(|c| c.max_memory = 2000), ServerConfig::default());
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    assert_eq!(failure(&ev, id), FailReason::OutOfMemory);
    n.assert_clean();
    // And a request body over the bound is refused at once.
    let mut n = Net::new(client_cfg(|c| c.max_memory = 2000), ServerConfig::default());
    let r = n.transfers.request(
        &mut n.client,
        n.now,
        SERVER,
        with_body(Code::PUT, "/large-update", &body(3000)),
    );
    assert_eq!(r, Err(ClientError::NoCapacity));
    n.assert_clean();
}

/// A server that answers another block than asked for, a payload that does
/// not fill its block with M set (§2.3), or SZX 7 (§2.2): BadBlock.
#[test]
fn misbehaving_server_fails_the_transfer() {
    type Script = fn(u32) -> MessageBuf;
    let always_first: Script = |_| {
        let mut a = MessageBuf::new(MessageType::Ack, Code::CONTENT);
        a.add_option_uint(
            OptionNumber::BLOCK2,
            Block::new(0, true, 2).unwrap().to_uint(),
        );
        a.set_payload(vec![b'x'; 64]);
        a
    };
    let short_block: Script = |num| {
        let mut a = MessageBuf::new(MessageType::Ack, Code::CONTENT);
        a.add_option_uint(
            OptionNumber::BLOCK2,
            Block::new(num, true, 2).unwrap().to_uint(),
        );
        a.set_payload(vec![b'x'; if num == 1 { 10 } else { 64 }]);
        a
    };
    let szx7: Script = |num| {
        let mut a = MessageBuf::new(MessageType::Ack, Code::CONTENT);
        let v = if num == 0 {
            (1 << 3) | 2
        } else {
            (num << 4) | 7
        };
        a.add_option_uint(OptionNumber::BLOCK2, v);
        a.set_payload(vec![b'x'; 64]);
        a
    };
    for (i, script) in [always_first, short_block, szx7].into_iter().enumerate() {
        let mut n = Net::default();
        n.hook = Box::new(move |m| Hooked::Answer(script(m.block2().map_or(0, Block::num))));
        let id = n.start(req(Code::GET, "/x"));
        let ev = n.run();
        assert_eq!(failure(&ev, id), FailReason::BadBlock, "script {i}");
        assert_eq!(n.sent.len(), 2, "script {i}");
        n.assert_clean();
    }
}

/// An error answer mid-transfer ends it and is the response (here 4.04
/// after the resource went away).
#[test]
fn error_mid_transfer_is_the_response() {
    let mut n = Net::default();
    let mut count = 0;
    n.hook = Box::new(move |_| {
        count += 1;
        if count == 2 {
            let mut a = MessageBuf::new(MessageType::Ack, Code::NOT_FOUND);
            a.set_payload("gone");
            Hooked::Answer(a)
        } else {
            Hooked::Serve
        }
    });
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    let m = response(&ev, id);
    assert_eq!((m.code(), m.payload()), (Code::NOT_FOUND, &b"gone"[..]));
    n.assert_clean();
}

// ----- timeouts, resets, cancel ------------------------------------------------

/// A block request that times out (RFC 7252 §4.2: no ACK after
/// MAX_RETRANSMIT retransmissions) is sent again as a new exchange.
#[test]
fn timed_out_block_request_is_retried() {
    let mut n = Net::default();
    let mut lost = 0;
    n.hook = Box::new(move |m| {
        // Every transmission of the first request for block 1 is lost.
        if m.block2().is_some_and(|b| b.num() == 1) && lost < 5 {
            lost += 1;
            Hooked::Drop
        } else {
            Hooked::Serve
        }
    });
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    assert_eq!(response(&ev, id).payload(), &body(LARGE)[..]);
    let mids: Vec<u16> = n.sent.iter().map(MessageBuf::message_id).collect();
    assert_eq!(n.sent.len(), 1 + 5 + 1 + 1);
    assert_eq!(
        mids[1..6]
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1,
        "5 transmissions of one CON"
    );
    assert_ne!(mids[6], mids[1], "the retry is a new exchange");
    assert!(
        n.now > Instant::from_secs(40),
        "after MAX_TRANSMIT_WAIT-ish"
    );
    n.assert_clean();
}

/// Retries are bounded; a POST's final request is never repeated (it is
/// not idempotent).
#[test]
fn timeouts_end_the_transfer() {
    let mut n = Net::new(client_cfg(|c| c.block_retries = 1), ServerConfig::default());
    n.hook = Box::new(|m| {
        if m.block2().is_some() {
            Hooked::Drop
        } else {
            Hooked::Serve
        }
    });
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    assert_eq!(failure(&ev, id), FailReason::TimedOut);
    assert_eq!(n.sent.len(), 1 + 2 * 5);
    n.assert_clean();

    let mut n = Net::default();
    n.hook = Box::new(|_| Hooked::Drop);
    let id = n.start(with_body(Code::POST, "/large-create", b"once"));
    let ev = n.run();
    assert_eq!(failure(&ev, id), FailReason::TimedOut);
    assert_eq!(n.sent.len(), 5, "one CON exchange, not repeated");
    n.assert_clean();
}

/// A Reset to a block request fails the transfer.
#[test]
fn reset_fails_the_transfer() {
    let mut n = Net::default();
    n.hook = Box::new(|m| {
        if m.block2().is_some() {
            Hooked::Reset
        } else {
            Hooked::Serve
        }
    });
    let id = n.start(req(Code::GET, "/large"));
    let ev = n.run();
    assert_eq!(failure(&ev, id), FailReason::Reset);
    n.assert_clean();
}

/// Cancel: the request in flight is cancelled, nothing more is reported.
#[test]
fn cancel_mid_transfer() {
    let mut n = Net::new(
        client_cfg(|c| c.block2_szx = Some(0)),
        ServerConfig::default(),
    );
    let mut count = 0;
    n.hook = Box::new(move |_| {
        count += 1;
        if count > 3 {
            Hooked::Drop
        } else {
            Hooked::Serve
        }
    });
    let id = n.start(req(Code::GET, "/large"));
    // Three blocks in, the fourth request is lost; cancel while waiting.
    let mut buf = vec![0u8; 2048];
    let mut events = Vec::new();
    for _ in 0..4 {
        while let Some(t) = n.client.poll_transmit(&mut buf).unwrap() {
            let bytes = buf[..t.len].to_vec();
            let msg = Message::parse(&bytes).unwrap();
            n.sent.push(MessageBuf::from(msg));
            if let Hooked::Serve = (n.hook)(&msg) {
                n.server_ep.handle_datagram(n.now, CLIENT, &bytes);
            }
        }
        while let Some(Event::Request(r)) = n.server_ep.poll_event() {
            n.server.handle(&mut n.server_ep, n.now, r, &mut n.store);
        }
        while let Some(t) = n.server_ep.poll_transmit(&mut buf).unwrap() {
            n.client.handle_datagram(n.now, SERVER, &buf[..t.len]);
        }
        while let Some(ev) = n.client.poll_event() {
            events.extend(n.transfers.handle_event(&mut n.client, n.now, ev));
        }
    }
    assert_eq!(progress(&events, id).len(), 3);
    assert_eq!(n.client.tables().requests, 1);
    n.transfers.cancel(&mut n.client, n.now, id).unwrap();
    assert_eq!(
        n.transfers.cancel(&mut n.client, n.now, id),
        Err(ClientError::UnknownTransfer)
    );
    assert_eq!(n.client.tables().requests, 0);
    assert!(n.run().is_empty());
    n.assert_clean();
}

// ----- Block1: the ETSI cases ----------------------------------------------------

/// TD_COAP_BLOCK_03 (RFC 7959 §2.5, Figure 7): PUT of a 3000-byte body in
/// 256-byte blocks: Block1 NUM/M/SZX on each, Size1 on the first (§4),
/// 2.31 Continue for each but the last, then 2.04; the server has the body
/// whole. Progress counts the bytes acknowledged.
#[test]
fn td_coap_block_03_put() {
    let mut n = Net::new(client_cfg(|c| c.block1_szx = 4), ServerConfig::default());
    let data = body(3000);
    let id = n.start(with_body(Code::PUT, "/large-update", &data));
    let ev = n.run();
    let m = response(&ev, id);
    assert_eq!(m.code(), Code::CHANGED);
    assert!(m.option(OptionNumber::BLOCK1).is_none());
    assert_eq!(n.store.update, data);
    let blocks = 3000usize.div_ceil(256);
    let shape = n.shape();
    assert_eq!(shape.len(), blocks);
    for (i, s) in shape.iter().enumerate() {
        let more = i + 1 < blocks;
        let len = if more { 256 } else { 3000 - 256 * (blocks - 1) };
        assert_eq!(
            *s,
            (Code::PUT, b(i as u32, more, 4), None, len),
            "block {i}"
        );
        assert_eq!(uint(&n.sent[i], OptionNumber::CONTENT_FORMAT), Some(0));
        assert_eq!(
            uint(&n.sent[i], OptionNumber::SIZE1),
            (i == 0).then_some(3000)
        );
        assert!(
            n.sent[i].option(OptionNumber::REQUEST_TAG).is_none(),
            "alone: no Request-Tag (RFC 9175 §3.4)"
        );
    }
    let p = progress(&ev, id);
    assert_eq!(p.len(), blocks - 1);
    assert!(
        p.iter()
            .enumerate()
            .all(|(i, &x)| x == (Phase::Upload, 256 * (i + 1), Some(3000)))
    );
    n.assert_clean();
    // And back with Block2.
    let id = n.start(req(Code::GET, "/large-update"));
    let ev = n.run();
    assert_eq!(response(&ev, id).payload(), &data[..]);
    n.assert_clean();
}

/// TD_COAP_BLOCK_04: POST with Block1 to /large-create; the final 2.01 and
/// its Location-Path are the response.
#[test]
fn td_coap_block_04_post() {
    let mut n = Net::new(client_cfg(|c| c.block1_szx = 5), ServerConfig::default());
    let data = body(2100);
    let id = n.start(with_body(Code::POST, "/large-create", &data));
    let ev = n.run();
    let m = response(&ev, id);
    assert_eq!(m.code(), Code::CREATED);
    let loc: Vec<&[u8]> = m
        .options()
        .filter(|o| o.number == OptionNumber::LOCATION_PATH)
        .map(|o| o.value)
        .collect();
    assert_eq!(loc, [&b"large-create"[..], b"1"]);
    assert_eq!(n.store.created, [data]);
    assert_eq!(n.sent.len(), 5);
    n.assert_clean();
}

/// TD_COAP_BLOCK_05 (RFC 7959 §2.7, §3.3 Figure 10): POST with Block1
/// whose answer is large. The server lowers the Block1 size in its first
/// 2.31 (from 1024 to 256 bytes), so the client resumes at NUM
/// 2^(6-4) = 4 (§2.5, Figure 9); the answer to the last block carries
/// Block1 and Block2 0/1; the client fetches the rest with POSTs that have
/// no Block1 and no payload, a Block2 option, and otherwise the same
/// options. The POST ran once.
#[test]
fn td_coap_block_05_post_two_way() {
    let mut scfg = ServerConfig::default();
    scfg.block1_szx = 4;
    scfg.block2_szx = 5;
    let mut n = Net::new(ClientConfig::default(), scfg);
    let data = body(2500);
    let id = n.start(with_body(Code::POST, "/large-post", &data));
    let ev = n.run();
    let m = response(&ev, id);
    let mut want = data.clone();
    want.reverse();
    assert_eq!((m.code(), m.payload()), (Code::CHANGED, &want[..]));
    assert_eq!(n.store.posts, 1);
    let shape = n.shape();
    let mut expect = vec![(Code::POST, b(0, true, 6), None, 1024)];
    for num in 4..9 {
        expect.push((Code::POST, b(num, true, 4), None, 256));
    }
    expect.push((Code::POST, b(9, false, 4), None, 2500 - 9 * 256));
    for num in 1..5 {
        expect.push((Code::POST, None, b(num, false, 5), 0));
    }
    assert_eq!(shape, expect);
    let p = progress(&ev, id);
    assert_eq!(p[0], (Phase::Upload, 1024, Some(2500)));
    assert_eq!(p[1], (Phase::Upload, 1280, Some(2500)));
    assert!(p.contains(&(Phase::Download, 512, Some(2500))));
    n.assert_clean();
}

/// RFC 7959 §2.3 (Figure 8): a stateless server answering 2.04 with
/// Block1 M=0 to each block; the client keeps sending.
#[test]
fn block1_to_a_stateless_server() {
    let mut n = Net::new(client_cfg(|c| c.block1_szx = 2), ServerConfig::default());
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s = seen.clone();
    n.hook = Box::new(move |m| {
        s.borrow_mut().extend_from_slice(m.payload());
        let mut a = MessageBuf::new(MessageType::Ack, Code::CHANGED);
        let b = m.block1().unwrap();
        a.add_option_uint(
            OptionNumber::BLOCK1,
            Block::new(b.num(), false, b.szx()).unwrap().to_uint(),
        );
        Hooked::Answer(a)
    });
    let data = body(200);
    let id = n.start(with_body(Code::PUT, "/file", &data));
    let ev = n.run();
    assert_eq!(response(&ev, id).code(), Code::CHANGED);
    assert_eq!(*seen.borrow(), data);
    n.assert_clean();
}

// ----- Block1: 4.13, 4.08 -------------------------------------------------------

/// RFC 7959 §2.9.3 / RFC 7252 §5.10.9: a 4.13 whose Size1 is below the
/// body size: the server will not take it at any block size; fail.
#[test]
fn too_large_with_smaller_size1_fails() {
    let mut n = Net::default();
    let id = n.start(with_body(Code::POST, "/large-create", &body(9000)));
    let ev = n.run();
    assert_eq!(
        failure(&ev, id),
        FailReason::RequestTooLarge { max: Some(8192) }
    );
    assert_eq!(
        n.sent.len(),
        1,
        "Size1 on block 0 let the server refuse at once"
    );
    assert!(n.store.created.is_empty());
    n.assert_clean();
}

/// A server that refuses blocks over 256 bytes with 4.13 and a Size1 that
/// the body fits: the client steps the block size down (1024, 512, 256)
/// and starts again from block 0 each time.
#[test]
fn too_large_renegotiates_a_smaller_size() {
    let mut n = Net::default();
    n.hook = Box::new(|m| {
        if m.payload().len() > 256 {
            let mut a = MessageBuf::new(MessageType::Ack, Code::REQUEST_ENTITY_TOO_LARGE);
            a.add_option_uint(OptionNumber::SIZE1, 100_000);
            Hooked::Answer(a)
        } else {
            Hooked::Serve
        }
    });
    let data = body(3000);
    let id = n.start(with_body(Code::PUT, "/large-update", &data));
    let ev = n.run();
    assert_eq!(response(&ev, id).code(), Code::CHANGED);
    assert_eq!(n.store.update, data);
    let firsts: Vec<Option<Block>> = n.shape().iter().take(3).map(|s| s.1).collect();
    assert_eq!(firsts, [b(0, true, 6), b(0, true, 5), b(0, true, 4)]);
    assert_eq!(n.sent.len(), 2 + 3000usize.div_ceil(256));
    assert!(progress(&ev, id).starts_with(&[
        (Phase::Upload, 0, Some(3000)),
        (Phase::Upload, 0, Some(3000))
    ]));
    n.assert_clean();
}

/// RFC 7959 §2.9.3: "a 4.13 response ... where the response carries a
/// smaller SZX in its Block1 Option is a hint to try that smaller SZX".
#[test]
fn too_large_with_a_block1_hint() {
    let mut n = Net::default();
    n.hook = Box::new(|m| {
        if m.payload().len() > 64 {
            let mut a = MessageBuf::new(MessageType::Ack, Code::REQUEST_ENTITY_TOO_LARGE);
            a.add_option_uint(
                OptionNumber::BLOCK1,
                Block::new(0, false, 2).unwrap().to_uint(),
            );
            Hooked::Answer(a)
        } else {
            Hooked::Serve
        }
    });
    let data = body(500);
    let id = n.start(with_body(Code::PUT, "/large-update", &data));
    let ev = n.run();
    assert_eq!(response(&ev, id).code(), Code::CHANGED);
    assert_eq!(n.store.update, data);
    assert_eq!(n.shape()[1].1, b(0, true, 2));
    n.assert_clean();
}

/// RFC 7959 §2.9.3: "a 4.13 response to a request that does not employ
/// Block1 is a hint for the client to try sending Block1": an 800-byte
/// body went whole; after the 4.13 it goes in 512-byte blocks.
#[test]
fn too_large_to_a_whole_request_tries_block1() {
    let mut n = Net::default();
    n.hook = Box::new(|m| {
        if m.block1().is_none() {
            Hooked::Answer(MessageBuf::new(
                MessageType::Ack,
                Code::REQUEST_ENTITY_TOO_LARGE,
            ))
        } else {
            Hooked::Serve
        }
    });
    let data = body(800);
    let id = n.start(with_body(Code::PUT, "/large-update", &data));
    let ev = n.run();
    assert_eq!(response(&ev, id).code(), Code::CHANGED);
    assert_eq!(n.store.update, data);
    assert_eq!(
        n.shape(),
        [
            (Code::PUT, None, None, 800),
            (Code::PUT, b(0, true, 5), None, 512),
            (Code::PUT, b(1, false, 5), None, 288),
        ]
    );
    n.assert_clean();
}

/// A 4.13 mid-upload without Size1 or a smaller size: the server lacks
/// the resources; fail.
#[test]
fn too_large_without_a_hint_fails() {
    let mut n = Net::new(client_cfg(|c| c.block1_szx = 4), ServerConfig::default());
    n.hook = Box::new(|m| {
        if m.block1().is_some_and(|b| b.num() == 2) {
            Hooked::Answer(MessageBuf::new(
                MessageType::Ack,
                Code::REQUEST_ENTITY_TOO_LARGE,
            ))
        } else {
            Hooked::Serve
        }
    });
    let id = n.start(with_body(Code::PUT, "/large-update", &body(3000)));
    let ev = n.run();
    assert_eq!(failure(&ev, id), FailReason::RequestTooLarge { max: None });
    // The server's partial upload expires (EXCHANGE_LIFETIME).
    n.assert_clean();
}

/// RFC 7959 §2.9.2: 4.08 when the server lost the earlier blocks. A PUT
/// (idempotent) starts again from block 0; a POST gets the 4.08 as its
/// response.
#[test]
fn incomplete_restarts_an_idempotent_upload() {
    let mut n = Net::new(client_cfg(|c| c.block1_szx = 4), ServerConfig::default());
    let mut count = 0;
    n.hook = Box::new(move |_| {
        count += 1;
        if count == 3 {
            Hooked::Answer(MessageBuf::new(
                MessageType::Ack,
                Code::REQUEST_ENTITY_INCOMPLETE,
            ))
        } else {
            Hooked::Serve
        }
    });
    let data = body(1000);
    let id = n.start(with_body(Code::PUT, "/large-update", &data));
    let ev = n.run();
    assert_eq!(response(&ev, id).code(), Code::CHANGED);
    assert_eq!(n.store.update, data);
    let nums: Vec<u32> = n.shape().iter().map(|s| s.1.unwrap().num()).collect();
    assert_eq!(nums, [0, 1, 2, 0, 1, 2, 3]);
    n.assert_clean();

    let mut n = Net::new(client_cfg(|c| c.block1_szx = 4), ServerConfig::default());
    let mut count = 0;
    n.hook = Box::new(move |_| {
        count += 1;
        if count == 3 {
            Hooked::Answer(MessageBuf::new(
                MessageType::Ack,
                Code::REQUEST_ENTITY_INCOMPLETE,
            ))
        } else {
            Hooked::Serve
        }
    });
    let id = n.start(with_body(Code::POST, "/large-create", &body(1000)));
    let ev = n.run();
    assert_eq!(response(&ev, id).code(), Code::REQUEST_ENTITY_INCOMPLETE);
    assert_eq!(n.sent.len(), 3);
    n.assert_clean();
}

/// A retried final block of a PUT whose first exchange the server did act
/// on, but whose answers were all lost: the retry (a new exchange) finds no
/// transfer at the server, which answers 4.08 (RFC 7959 §2.9.2); the PUT
/// starts again and ends with the same state (idempotence, RFC 7252 §5.1).
#[test]
fn lost_final_answer_then_incomplete_restarts_the_put() {
    let mut n = Net::new(client_cfg(|c| c.block1_szx = 5), ServerConfig::default());
    let data = body(1500);
    let mut lost = 0;
    n.drop_answer = Box::new(move |m| {
        // The 2.04 answers to the final block (Block1 echo with M unset):
        // the piggybacked one and the 4 repeated from the dedup cache.
        if m.code() == Code::CHANGED && lost < 5 {
            lost += 1;
            return true;
        }
        false
    });
    let id = n.start(with_body(Code::PUT, "/large-update", &data));
    let ev = n.run();
    assert_eq!(response(&ev, id).code(), Code::CHANGED);
    assert_eq!(n.store.update, data);
    let nums: Vec<(u32, u16)> = n
        .shape()
        .iter()
        .zip(&n.sent)
        .map(|(s, m)| (s.1.unwrap().num(), m.message_id()))
        .collect();
    let blocks: Vec<u32> = nums.iter().map(|x| x.0).collect();
    assert_eq!(blocks, [0, 1, 2, 2, 2, 2, 2, 2, 0, 1, 2]);
    assert_ne!(nums[2].1, nums[7].1, "the retry is a new exchange");
    n.assert_clean();
}

/// RFC 7959 §2.5 (Figure 9): the server's smaller preferred size in its
/// first 2.31 (1024 -> 128): the client continues at NUM 8 in 128-byte
/// blocks.
#[test]
fn block1_honours_the_servers_smaller_size() {
    let mut scfg = ServerConfig::default();
    scfg.block1_szx = 3;
    let mut n = Net::new(ClientConfig::default(), scfg);
    let data = body(2000);
    let id = n.start(with_body(Code::PUT, "/large-update", &data));
    let ev = n.run();
    assert_eq!(response(&ev, id).code(), Code::CHANGED);
    assert_eq!(n.store.update, data);
    let blocks: Vec<(u32, u8)> = n
        .shape()
        .iter()
        .map(|s| (s.1.unwrap().num(), s.1.unwrap().szx()))
        .collect();
    let mut want = vec![(0, 6)];
    want.extend((8..16).map(|n| (n, 3)));
    assert_eq!(blocks, want);
    n.assert_clean();
}

/// A Block1 block size lowered until a block fits the endpoint's
/// `max_message_size` with the request's options.
#[test]
fn block1_size_fits_the_message_size() {
    let mut n = Net::default();
    let mut put = with_body(Code::PUT, "/large-update", &body(3000));
    put.add_option(OptionNumber::URI_QUERY, "q".repeat(200));
    let id = n.start(put);
    let ev = n.run();
    // 1024 + 200-byte query does not fit 1152: 512-byte blocks.
    assert_eq!(n.shape()[0].1, b(0, true, 5));
    assert_eq!(response(&ev, id).code(), Code::CHANGED);
    n.assert_clean();
}

// ----- Request-Tag (RFC 9175 §3) -----------------------------------------------

/// Two concurrent POSTs of different bodies to the same resource: the
/// second carries a Request-Tag (the first needs none, RFC 9175 §3.4), so
/// the server keeps them apart (§3.3) even though their blocks interleave.
#[test]
fn request_tag_separates_concurrent_uploads() {
    let mut n = Net::new(client_cfg(|c| c.block1_szx = 4), ServerConfig::default());
    let (a, b_) = (body(1200), variant(7, 1500));
    let ia = n.start(with_body(Code::POST, "/large-create", &a));
    let ib = n.start(with_body(Code::POST, "/large-create", &b_));
    let ev = n.run();
    assert_eq!(response(&ev, ia).code(), Code::CREATED);
    assert_eq!(response(&ev, ib).code(), Code::CREATED);
    let mut created = n.store.created.clone();
    created.sort_by_key(Vec::len);
    assert_eq!(created, [a, b_]);
    // Interleaved: both transfers had blocks in flight at the same time.
    let tags: Vec<Option<Vec<u8>>> = n
        .sent
        .iter()
        .map(|m| m.option(OptionNumber::REQUEST_TAG).map(<[u8]>::to_vec))
        .collect();
    let tagged: Vec<usize> = (0..tags.len()).filter(|&i| tags[i].is_some()).collect();
    assert_eq!(tagged.len(), 1500usize.div_ceil(256));
    assert!(
        tagged[0] < 3,
        "the second upload started before the first ended"
    );
    assert!(
        tags.iter()
            .flatten()
            .all(|t| t.len() == 4 && *t == *tags[tagged[0]].as_ref().unwrap())
    );
    n.assert_clean();

    // A third upload after both ended needs no tag again.
    let ic = n.start(with_body(Code::POST, "/large-create", &body(300)));
    let ev = n.run();
    assert_eq!(response(&ev, ic).code(), Code::CREATED);
    assert!(
        n.sent
            .iter()
            .rev()
            .take(2)
            .all(|m| m.option(OptionNumber::REQUEST_TAG).is_none())
    );
    n.assert_clean();
}

/// `RequestTags::Always`: every unsafe transfer is tagged, with distinct
/// tags from the keyed counter; the Block2 phase of a two-way POST keeps
/// the tag (RFC 9175 §3.4), which the server's kept response is keyed on.
#[test]
fn request_tag_always_and_in_the_block2_phase() {
    let mut n = Net::new(
        client_cfg(|c| {
            c.request_tags = RequestTags::Always;
            c.tag_seed = 42;
            c.block1_szx = 5;
        }),
        ServerConfig::default(),
    );
    let data = body(1500);
    let ia = n.start(with_body(Code::POST, "/large-post", &data));
    let ib = n.start(with_body(Code::POST, "/large-post", &variant(3, 1500)));
    let ev = n.run();
    let mut want = data.clone();
    want.reverse();
    assert_eq!(response(&ev, ia).payload(), &want[..]);
    let mut want_b = variant(3, 1500);
    want_b.reverse();
    assert_eq!(response(&ev, ib).payload(), &want_b[..]);
    let tags: std::collections::BTreeSet<Vec<u8>> = n
        .sent
        .iter()
        .map(|m| {
            m.option(OptionNumber::REQUEST_TAG)
                .expect("every request tagged")
                .to_vec()
        })
        .collect();
    assert_eq!(tags.len(), 2);
    assert_eq!(n.store.posts, 2);
    n.assert_clean();
}

/// GET transfers never carry a Request-Tag (their Block2 is stateless);
/// a Request-Tag the application set is kept and none added.
#[test]
fn request_tag_not_for_get_and_app_tag_kept() {
    let mut n = Net::new(
        client_cfg(|c| c.request_tags = RequestTags::Always),
        ServerConfig::default(),
    );
    let ia = n.start(req(Code::GET, "/large"));
    let mut put = with_body(Code::PUT, "/large-update", &body(2000));
    put.add_option(OptionNumber::REQUEST_TAG, [9, 9]);
    let ib = n.start(put);
    let ev = n.run();
    assert_eq!(response(&ev, ia).payload(), &body(LARGE)[..]);
    assert_eq!(response(&ev, ib).code(), Code::CHANGED);
    for m in &n.sent {
        let tags: Vec<&[u8]> = m
            .options()
            .filter(|o| o.number == OptionNumber::REQUEST_TAG)
            .map(|o| o.value)
            .collect();
        if m.code() == Code::GET {
            assert!(tags.is_empty());
        } else {
            assert_eq!(tags, [&[9u8, 9][..]]);
        }
    }
    n.assert_clean();
}

// ----- Block1 + Block2 combined, with early negotiation ---------------------------

/// RFC 7959 §3.3 Figure 11: early Block2 negotiation on the last Block1
/// block; the rest of the answer comes in that size.
#[test]
fn two_way_with_early_block2_negotiation() {
    let mut n = Net::new(
        client_cfg(|c| {
            c.block1_szx = 6;
            c.block2_szx = Some(2);
        }),
        ServerConfig::default(),
    );
    let data = body(1100);
    let id = n.start(with_body(Code::POST, "/large-post", &data));
    let ev = n.run();
    let mut want = data.clone();
    want.reverse();
    assert_eq!(response(&ev, id).payload(), &want[..]);
    let shape = n.shape();
    assert_eq!(shape[0], (Code::POST, b(0, true, 6), None, 1024));
    assert_eq!(shape[1], (Code::POST, b(1, false, 6), b(0, false, 2), 76));
    assert_eq!(shape[2], (Code::POST, None, b(1, false, 2), 0));
    assert_eq!(shape.len(), 2 + 1100usize.div_ceil(64) - 1);
    n.assert_clean();
}

/// The answer of an unsafe method cannot be fetched again without running
/// the method again: an ETag change in its Block2 phase fails even with
/// `OnEtagChange::Restart`.
#[test]
fn two_way_etag_change_fails() {
    let mut n = Net::default();
    n.hook = Box::new(|m| {
        let num = m.block2().map_or(0, Block::num);
        let mut a = MessageBuf::new(MessageType::Ack, Code::CHANGED);
        a.add_option(OptionNumber::ETAG, [num as u8]);
        a.add_option_uint(
            OptionNumber::BLOCK2,
            Block::new(num, true, 4).unwrap().to_uint(),
        );
        a.set_payload(vec![0u8; 256]);
        Hooked::Answer(a)
    });
    let id = n.start(with_body(Code::POST, "/p", b"small"));
    let ev = n.run();
    assert_eq!(failure(&ev, id), FailReason::RepresentationChanged);
    assert_eq!(n.sent.len(), 2);
    // The follow-up had no payload.
    assert_eq!(n.sent[1].payload(), b"");
    n.assert_clean();
}

// ----- Observe + Block2 (RFC 7959 §2.6) ------------------------------------------

/// `resume_block2`: a first block that arrived outside the layer (as an
/// Observe notification would) is continued with plain GETs, tied by its
/// ETag.
#[test]
fn resume_block2_after_a_first_block() {
    let mut n = Net::new(
        client_cfg(|c| c.block2_szx = Some(3)),
        ServerConfig::default(),
    );
    let get = req(Code::GET, "/large");
    let mut first = get.clone();
    first.add_option_uint(
        OptionNumber::BLOCK2,
        Block::new(0, false, 3).unwrap().to_uint(),
    );
    let rid = n.client.request(n.now, SERVER, &first).unwrap();
    // Run the plain exchange by hand: its events pass through the layer.
    let mut buf = vec![0u8; 2048];
    while let Some(t) = n.client.poll_transmit(&mut buf).unwrap() {
        n.server_ep.handle_datagram(n.now, CLIENT, &buf[..t.len]);
    }
    while let Some(Event::Request(r)) = n.server_ep.poll_event() {
        n.server.handle(&mut n.server_ep, n.now, r, &mut n.store);
    }
    while let Some(t) = n.server_ep.poll_transmit(&mut buf).unwrap() {
        n.client.handle_datagram(n.now, SERVER, &buf[..t.len]);
    }
    let ev = n.client.poll_event().unwrap();
    let Some(ClientEvent::Endpoint(Event::Response(r))) =
        n.transfers.handle_event(&mut n.client, n.now, ev)
    else {
        panic!("a plain response passes through");
    };
    assert_eq!(r.id, rid);
    let id = n
        .transfers
        .resume_block2(&mut n.client, n.now, SERVER, get, &r.message())
        .unwrap();
    let ev = n.run();
    assert_eq!(response(&ev, id).payload(), &body(LARGE)[..]);
    assert_eq!(n.shape()[0].2, b(1, false, 3));
    n.assert_clean();
}

// ----- API edges ------------------------------------------------------------------

/// Bounds and refusals: max_transfers, multicast, resume without Block2.
#[test]
fn refusals() {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
    struct Group;
    impl coap_proto::endpoint::Address for Group {
        fn is_multicast(&self) -> bool {
            true
        }
    }
    let mut n = Net::new(client_cfg(|c| c.max_transfers = 1), ServerConfig::default());
    let id = n.start(req(Code::GET, "/large"));
    let r = n
        .transfers
        .request(&mut n.client, n.now, SERVER, req(Code::GET, "/large"));
    assert_eq!(r, Err(ClientError::NoCapacity));
    let ev = n.run();
    assert_eq!(response(&ev, id).payload(), &body(LARGE)[..]);
    n.assert_clean();

    let mut ep: Endpoint<Group> = Endpoint::new(Config::default(), 1);
    let mut t: Transfers<Group> = Transfers::new(ClientConfig::default());
    let mut get = req(Code::GET, "/x");
    get.set_ty(MessageType::Non);
    assert_eq!(
        t.request(&mut ep, Instant::ZERO, Group, get.clone()),
        Err(ClientError::Multicast)
    );
    let small = MessageBuf::new(MessageType::Ack, Code::CONTENT)
        .to_bytes()
        .unwrap();
    let mut ep: Endpoint<u32> = Endpoint::new(Config::default(), 1);
    let mut t: Transfers<u32> = Transfers::new(ClientConfig::default());
    assert_eq!(
        t.resume_block2(
            &mut ep,
            Instant::ZERO,
            2,
            get,
            &Message::parse(&small).unwrap()
        ),
        Err(ClientError::NotBlockWise)
    );
    assert!(t.is_empty() && ep.tables().is_empty());
}

/// Events the layer does not own pass through untouched, also while
/// transfers run; its own Acknowledged events are consumed.
#[test]
fn foreign_events_pass_through() {
    let mut n = Net::default();
    let id = n.start(req(Code::GET, "/large"));
    let plain = n
        .client
        .request(n.now, SERVER, &req(Code::GET, "/small"))
        .unwrap();
    let ev = n.run();
    assert_eq!(response(&ev, id).payload(), &body(LARGE)[..]);
    let passed: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Endpoint(Event::Response(r)) => {
                Some((r.id, r.message().payload().to_vec()))
            }
            ClientEvent::Endpoint(other) => panic!("{other:?}"),
            _ => None,
        })
        .collect();
    assert_eq!(passed, [(plain, b"hello".to_vec())]);
    n.assert_clean();
}
