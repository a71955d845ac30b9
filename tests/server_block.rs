//! Server-side block-wise transfers through the resource layer
//! (`coap_proto::server`), RFC 7959: Block2 slicing with late and early
//! negotiation, random access, Size2 and ETag (§2.2-§2.4, §4); Block1
//! reassembly with 2.31, 4.08 and 4.13 (§2.5, §2.9); Request-Tag
//! (RFC 9175 §3); the two-way transfer of §2.7; bounded reassembly memory.
//! The ETSI plugtest cases are TD_COAP_BLOCK_01 to _06.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use coap_proto::endpoint::{Config, Endpoint, Event, ResponseHandle};
use coap_proto::server::{
    BodyBlock, ETag, Reply, Resource, ResourceState, Server, ServerConfig, TRANSFER_BYTES,
};
use coap_proto::{
    Block, Code, ContentFormat, Instant, Message, MessageBuf, MessageType, OptionNumber,
    decode_uint,
};

// ----- harness ----------------------------------------------------------------

const PEER: u32 = 7;

struct H<S> {
    ep: Endpoint<u32>,
    server: Server<u32, S>,
    state: S,
    mid: u16,
    now: Instant,
}

impl<S> H<S> {
    fn new(server: Server<u32, S>, state: S) -> Self {
        let mut cfg = Config::default();
        cfg.max_dedup = 64; // many peers in the memory test
        Self {
            ep: Endpoint::new(cfg, 0x5eed),
            server,
            state,
            mid: 0x100,
            now: Instant::from_secs(1),
        }
    }

    fn send_from(&mut self, peer: u32, mut req: MessageBuf) -> Vec<MessageBuf> {
        self.mid = self.mid.wrapping_add(1);
        req.set_message_id(self.mid);
        req.set_token(&self.mid.to_be_bytes()).unwrap();
        self.ep
            .handle_datagram(self.now, peer, &req.to_bytes().unwrap());
        while let Some(ev) = self.ep.poll_event() {
            if let Event::Request(r) = ev {
                self.server
                    .handle(&mut self.ep, self.now, r, &mut self.state);
            }
        }
        self.drain()
    }

    fn drain(&mut self) -> Vec<MessageBuf> {
        let mut buf = vec![0u8; 2048];
        let mut out = Vec::new();
        while let Some(t) = self.ep.poll_transmit(&mut buf).unwrap() {
            assert!(t.len <= self.ep.config().max_message_size);
            out.push(MessageBuf::from(Message::parse(&buf[..t.len]).unwrap()));
        }
        out
    }

    #[track_caller]
    fn ask_from(&mut self, peer: u32, req: MessageBuf) -> MessageBuf {
        let mut v = self.send_from(peer, req);
        assert_eq!(v.len(), 1, "expected one answer, got {v:?}");
        v.remove(0)
    }

    #[track_caller]
    fn ask(&mut self, req: MessageBuf) -> MessageBuf {
        self.ask_from(PEER, req)
    }
}

fn req(code: Code, path: &str) -> MessageBuf {
    let mut m = MessageBuf::new(MessageType::Con, code);
    for seg in path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
    {
        m.add_option(OptionNumber::URI_PATH, seg);
    }
    m
}

fn uint(m: &MessageBuf, n: OptionNumber) -> Option<u32> {
    m.option(n).map(|v| decode_uint(v).unwrap())
}

fn block2_of(m: &MessageBuf) -> Option<Block> {
    m.option(OptionNumber::BLOCK2)
        .map(|v| Block::from_value(v).unwrap())
}

fn block1_of(m: &MessageBuf) -> Option<Block> {
    m.option(OptionNumber::BLOCK1)
        .map(|v| Block::from_value(v).unwrap())
}

fn get_block(path: &str, num: u32, szx: u8) -> MessageBuf {
    let mut m = req(Code::GET, path);
    m.add_option_uint(
        OptionNumber::BLOCK2,
        Block::new(num, false, szx).unwrap().to_uint(),
    );
    m
}

/// A body with distinct bytes everywhere.
fn body(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36] ^ ((i / 36) as u8 & 0x40))
        .collect()
}

const LARGE: usize = 2440;

/// /large (GET), /large-update (GET, PUT), /large-create (POST), /large-post
/// (POST, answers with a large body), /stream (PUT, streamed).
#[derive(Default)]
struct Store {
    large: Vec<u8>,
    update: Vec<u8>,
    created: Vec<Vec<u8>>,
    posts: u32,
    chunks: Vec<(usize, bool, Vec<u8>)>,
    later: Vec<ResponseHandle>,
}

fn server(cfg: ServerConfig) -> H<Store> {
    let mut s: Server<u32, Store> = Server::new(cfg);
    s.add(
        Resource::new("/large")
            .format(ContentFormat::TEXT_PLAIN)
            .get(|st: &mut Store, _| Reply::content(ContentFormat::TEXT_PLAIN, st.large.clone())),
    )
    .unwrap();
    s.add(
        Resource::new("/large-update")
            .format(ContentFormat::TEXT_PLAIN)
            .get(|st: &mut Store, _| Reply::content(ContentFormat::TEXT_PLAIN, st.update.clone()))
            .put(|st: &mut Store, r| {
                st.update = r.body.to_vec();
                Reply::status(Code::CHANGED)
            }),
    )
    .unwrap();
    s.add(
        Resource::new("/large-create")
            .max_body(4096)
            .post(|st: &mut Store, r| {
                st.created.push(r.body.to_vec());
                Reply::status(Code::CREATED)
            }),
    )
    .unwrap();
    s.add(Resource::new("/large-post").post(|st: &mut Store, r| {
        st.posts += 1;
        // Echo the upload reversed, as a large response.
        let mut out = r.body.to_vec();
        out.reverse();
        let mut m = MessageBuf::new(MessageType::Ack, Code::CHANGED);
        m.set_payload(out);
        Reply::Now(m)
    }))
    .unwrap();
    s.add(
        Resource::new("/stream")
            .stream_blocks()
            .put(|st: &mut Store, r| {
                let Some(b): Option<BodyBlock> = r.block else {
                    return Reply::status(Code::BAD_REQUEST);
                };
                st.chunks.push((b.offset, b.last, r.body.to_vec()));
                if b.last {
                    Reply::status(Code::CHANGED)
                } else {
                    Reply::status(Code::CONTINUE)
                }
            }),
    )
    .unwrap();
    s.add(Resource::new("/slow-upload").put(|st: &mut Store, r| {
        st.later.push(r.handle);
        Reply::Later
    }))
    .unwrap();
    H::new(
        s,
        Store {
            large: body(LARGE),
            update: body(100),
            ..Store::default()
        },
    )
}

/// Fetches a whole representation block by block: the first request with
/// `first` (None: no Block2, late negotiation), the rest with the size the
/// server used. Checks NUM, M, the SZX bound, Size2 and the ETag on every
/// block; returns the body and the block size used.
#[track_caller]
fn fetch(
    h: &mut H<Store>,
    path: &str,
    first: Option<(u32, u8)>,
) -> (Vec<u8>, usize, Vec<MessageBuf>) {
    let mut r = req(Code::GET, path);
    if let Some((num, szx)) = first {
        r.add_option_uint(
            OptionNumber::BLOCK2,
            Block::new(num, false, szx).unwrap().to_uint(),
        );
    }
    let m = h.ask(r);
    assert_eq!(m.code(), Code::CONTENT);
    let b = block2_of(&m).expect("block-wise answer");
    assert_eq!(b.num(), 0);
    if let Some((_, szx)) = first {
        assert!(
            b.szx() <= szx,
            "RFC 7959 §2.4: the size indicated or a smaller one"
        );
    }
    let size2 = uint(&m, OptionNumber::SIZE2).expect("Size2 on the first block (RFC 7959 §4)");
    let etag = m
        .option(OptionNumber::ETAG)
        .expect("ETag on every block (RFC 7959 §2.4)")
        .to_vec();
    let szx = b.szx();
    let mut out = m.payload().to_vec();
    let mut more = b.more();
    let mut all = vec![m];
    while more {
        assert_eq!(
            out.len() % b.size(),
            0,
            "M set: the payload fills the block (§2.3)"
        );
        let num = (out.len() / b.size()) as u32;
        let m = h.ask(get_block(path, num, szx));
        let nb = block2_of(&m).unwrap();
        assert_eq!((nb.num(), nb.szx()), (num, szx));
        assert_eq!(m.option(OptionNumber::ETAG), Some(&etag[..]));
        assert_eq!(
            uint(&m, OptionNumber::SIZE2),
            None,
            "Size2 only on the first block unless asked"
        );
        out.extend_from_slice(m.payload());
        more = nb.more();
        all.push(m);
    }
    assert_eq!(out.len(), size2 as usize);
    (out, b.size(), all)
}

/// PUT/POST `data` in blocks of 2^(szx+4) bytes; returns every answer.
fn upload(
    h: &mut H<Store>,
    peer: u32,
    code: Code,
    path: &str,
    data: &[u8],
    szx: u8,
    tag: Option<&[u8]>,
) -> Vec<MessageBuf> {
    let size = 1usize << (szx + 4);
    let chunks: Vec<&[u8]> = data.chunks(size).collect();
    let mut answers = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let mut r = req(code, path);
        if let Some(t) = tag {
            r.add_option(OptionNumber::REQUEST_TAG, t);
        }
        r.add_option_uint(OptionNumber::CONTENT_FORMAT, 0);
        let more = i + 1 < chunks.len();
        r.add_option_uint(
            OptionNumber::BLOCK1,
            Block::new(i as u32, more, szx).unwrap().to_uint(),
        );
        if i == 0 {
            r.add_option_uint(OptionNumber::SIZE1, data.len() as u32);
        }
        r.set_payload(c.to_vec());
        answers.push(h.ask_from(peer, r));
    }
    answers
}

#[track_caller]
fn assert_continues(answers: &[MessageBuf], szx: u8) {
    for (i, a) in answers[..answers.len() - 1].iter().enumerate() {
        assert_eq!(
            a.code(),
            Code::CONTINUE,
            "2.31 for block {i} (RFC 7959 §2.9.1)"
        );
        assert!(a.payload().is_empty(), "2.31 has no payload");
        let b = block1_of(a).expect("Block1 echo");
        assert_eq!((b.num(), b.more(), b.szx()), (i as u32, true, szx));
    }
}

// ----- Block2 (RFC 7959 §2.2-2.4) -------------------------------------------------

/// TD_COAP_BLOCK_01: early negotiation by the client (RFC 7959 §2.4): the
/// first GET carries Block2 0/0/64, every answer is a 64-byte block.
#[test]
fn td_coap_block_01_early_negotiation() {
    let mut h = server(ServerConfig::default());
    let (data, size, blocks) = fetch(&mut h, "/large", Some((0, 2)));
    assert_eq!(size, 64);
    assert_eq!(data, body(LARGE));
    assert_eq!(blocks.len(), LARGE.div_ceil(64));
    assert!(
        blocks
            .iter()
            .all(|b| uint(b, OptionNumber::CONTENT_FORMAT) == Some(0))
    );
    assert_eq!(h.server.stats().blocks_sent, blocks.len() as u64);
    assert_eq!(h.server.transfer_count(), 0, "Block2 of GET is stateless");
}

/// TD_COAP_BLOCK_02: late negotiation (RFC 7959 §2.4): a GET without
/// Block2 gets the server's size (SZX 6 by default, 1024 bytes) with
/// M set; the client continues with that size.
#[test]
fn td_coap_block_02_late_negotiation() {
    let mut h = server(ServerConfig::default());
    let first = h.ask(req(Code::GET, "/large"));
    assert_eq!(block2_of(&first), Some(Block::new(0, true, 6).unwrap()));
    assert_eq!(first.payload().len(), 1024);
    let (data, size, _) = fetch(&mut h, "/large", None);
    assert_eq!((data, size), (body(LARGE), 1024));
}

/// RFC 7959 §2.4 (late negotiation to a smaller size): after a first
/// 1024-byte block the client asks for 512-byte blocks from offset 1024
/// (NUM 2, SZX 5); the server follows.
#[test]
fn late_negotiation_to_a_smaller_size() {
    let mut h = server(ServerConfig::default());
    let first = h.ask(req(Code::GET, "/large"));
    let mut out = first.payload().to_vec();
    let mut num = 2;
    loop {
        let m = h.ask(get_block("/large", num, 5));
        let b = block2_of(&m).unwrap();
        assert_eq!((b.num(), b.szx()), (num, 5));
        out.extend_from_slice(m.payload());
        if !b.more() {
            break;
        }
        num += 1;
    }
    assert_eq!(out, body(LARGE));
}

/// Early negotiation by the server (RFC 7959 §2.4: "the server uses the
/// block size indicated in the request option or a smaller size"): with a
/// preferred SZX 2, a client asking for 1024 gets 64-byte blocks, and a
/// request in the client's larger size keeps its byte offset.
#[test]
fn server_preferred_block_size() {
    let mut cfg = ServerConfig::default();
    cfg.block2_szx = 2;
    let mut h = server(cfg);
    let (data, size, _) = fetch(&mut h, "/large", Some((0, 6)));
    assert_eq!((data.len(), size), (LARGE, 64));
    // NUM 1 at SZX 6 is offset 1024 = NUM 16 at SZX 2.
    let m = h.ask(get_block("/large", 1, 6));
    assert_eq!(block2_of(&m), Some(Block::new(16, true, 2).unwrap()));
    assert_eq!(m.payload(), &body(LARGE)[1024..1088]);
}

/// TD_COAP_BLOCK_06: early negotiation with the smallest block size (SZX 0,
/// 16 bytes).
#[test]
fn td_coap_block_06_sixteen_byte_blocks() {
    let mut h = server(ServerConfig::default());
    let (data, size, blocks) = fetch(&mut h, "/large", Some((0, 0)));
    assert_eq!(
        (data, size, blocks.len()),
        (body(LARGE), 16, LARGE.div_ceil(16))
    );
    assert!(
        blocks[..blocks.len() - 1]
            .iter()
            .all(|b| b.payload().len() == 16)
    );
}

/// Every block size from 16 to 1024 gives the same content.
#[test]
fn every_block_size_gives_the_same_body() {
    let mut h = server(ServerConfig::default());
    for szx in 0..=6 {
        let (data, size, _) = fetch(&mut h, "/large", Some((0, szx)));
        assert_eq!((data, size), (body(LARGE), 16 << szx));
    }
}

/// Random access (RFC 7959 §2.2, §2.4): the first request may ask for any
/// NUM; no Size2 unless asked (§4), then Size2 with the total.
#[test]
fn random_access_and_size2_on_request() {
    let mut h = server(ServerConfig::default());
    let m = h.ask(get_block("/large", 5, 2));
    assert_eq!(block2_of(&m), Some(Block::new(5, true, 2).unwrap()));
    assert_eq!(m.payload(), &body(LARGE)[320..384]);
    assert_eq!(uint(&m, OptionNumber::SIZE2), None);
    let mut r = get_block("/large", 38, 2);
    r.add_option(OptionNumber::SIZE2, []); // Size2: 0, a size request
    let m = h.ask(r);
    assert_eq!(block2_of(&m), Some(Block::new(38, false, 2).unwrap()));
    assert_eq!(m.payload(), &body(LARGE)[2432..]);
    assert_eq!(uint(&m, OptionNumber::SIZE2), Some(LARGE as u32));
}

/// RFC 7959 §4: Size2 in a request asks for the size even when the
/// representation fits one message (no Block2 then).
#[test]
fn size2_request_on_small_representation() {
    let mut h = server(ServerConfig::default());
    let mut r = req(Code::GET, "/large-update");
    r.add_option(OptionNumber::SIZE2, []);
    let m = h.ask(r);
    assert_eq!(
        (block2_of(&m), uint(&m, OptionNumber::SIZE2)),
        (None, Some(100))
    );
    assert_eq!(m.payload(), body(100));
}

/// A block past the end: RFC 7959 defines no code for it (§2.2 defines NUM
/// as the block "being requested"; §2.1 says the critical Block option
/// "MUST be processed (or the message rejected)"), so the layer rejects the
/// option with 4.02 Bad Option (RFC 7252 §5.4.1, §5.9.2.3). Block 0 of an
/// empty representation is valid (M unset, no payload).
#[test]
fn block_past_the_end_is_4_02() {
    let mut h = server(ServerConfig::default());
    assert_eq!(h.ask(get_block("/large", 38, 2)).code(), Code::CONTENT); // the last, at 2432
    assert_eq!(h.ask(get_block("/large", 39, 2)).code(), Code::BAD_OPTION);
    assert_eq!(
        h.ask(get_block("/large", (1 << 20) - 1, 6)).code(),
        Code::BAD_OPTION
    );
    h.state.update.clear();
    let m = h.ask(get_block("/large-update", 0, 2));
    assert_eq!(
        (m.code(), block2_of(&m)),
        (Code::CONTENT, Some(Block::new(0, false, 2).unwrap()))
    );
    assert!(m.payload().is_empty());
    assert_eq!(
        h.ask(get_block("/large-update", 1, 2)).code(),
        Code::BAD_OPTION
    );
}

/// RFC 7959 §2.2: SZX 7 is reserved and "MUST lead to a 4.00 Bad Request".
#[test]
fn reserved_szx_is_4_00() {
    let mut h = server(ServerConfig::default());
    let mut r = req(Code::GET, "/large");
    r.add_option_uint(OptionNumber::BLOCK2, 0x17);
    assert_eq!(h.ask(r).code(), Code::BAD_REQUEST);
    let mut r = req(Code::PUT, "/large-update");
    r.add_option_uint(OptionNumber::BLOCK1, 0x0f);
    r.set_payload(vec![0; 16]);
    assert_eq!(h.ask(r).code(), Code::BAD_REQUEST);
}

/// RFC 7959 §2.4: the ETag on every block lets the client see that the
/// representation changed between blocks.
#[test]
fn etag_changes_with_the_representation() {
    let mut h = server(ServerConfig::default());
    let first = h.ask(get_block("/large", 0, 4));
    h.state.large[300] ^= 1;
    // The application marks the change (the layer keeps the representation
    // for its follow-up blocks until then).
    let id = h.server.find("/large").unwrap();
    h.server.invalidate(id);
    let second = h.ask(get_block("/large", 1, 4));
    let old = first.option(OptionNumber::ETAG).unwrap();
    let new = second.option(OptionNumber::ETAG).unwrap();
    assert_ne!(old, new);
    assert_eq!(
        new,
        ETag::of(Some(ContentFormat::TEXT_PLAIN), &h.state.large).as_bytes()
    );
    // A handler's own ETag is kept.
    let mut s: Server<u32, Store> = Server::new(ServerConfig::default());
    s.add(Resource::new("/v").get(|_, _| {
        let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
        m.add_option(OptionNumber::ETAG, b"v7");
        m.set_payload(vec![1u8; 3000]);
        Reply::Now(m)
    }))
    .unwrap();
    let mut h2 = H::new(s, Store::default());
    let m = h2.ask(get_block("/v", 1, 6));
    assert_eq!(m.option(OptionNumber::ETAG), Some(&b"v7"[..]));
}

/// A representation small enough in bytes but too large with its options
/// for one datagram is sliced with a smaller size.
#[test]
fn block_size_shrinks_to_fit_the_datagram() {
    let mut s: Server<u32, Store> = Server::new(ServerConfig::default());
    s.add(Resource::new("/fat").get(|_, _| {
        let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
        m.add_option(OptionNumber::LOCATION_QUERY, vec![b'q'; 250]);
        m.set_payload(vec![7u8; 1000]);
        Reply::Now(m)
    }))
    .unwrap();
    let mut h = H::new(s, Store::default());
    let m = h.ask(req(Code::GET, "/fat"));
    let b = block2_of(&m).unwrap();
    assert_eq!((b.num(), b.more(), b.szx()), (0, true, 5));
    assert_eq!(m.payload().len(), 512);
}

// ----- Block1 (RFC 7959 §2.5, §2.9) -----------------------------------------------

/// TD_COAP_BLOCK_03: PUT with Block1: 2.31 Continue with the Block1 echo
/// (M set) per block, then 2.04 with Block1 (M unset); the body arrives
/// whole.
#[test]
fn td_coap_block_03_put() {
    let mut h = server(ServerConfig::default());
    let data = body(3000);
    let answers = upload(&mut h, PEER, Code::PUT, "/large-update", &data, 4, None);
    assert_eq!(answers.len(), 12);
    assert_continues(&answers, 4);
    let last = answers.last().unwrap();
    assert_eq!(last.code(), Code::CHANGED);
    assert_eq!(block1_of(last), Some(Block::new(11, false, 4).unwrap()));
    assert_eq!(h.state.update, data);
    assert_eq!(
        (h.server.transfer_count(), h.server.transfer_memory()),
        (0, 0)
    );
    assert_eq!(h.server.stats().uploads_completed, 1);
    // And back with Block2 (check-server's round trip).
    let (back, _, _) = fetch(&mut h, "/large-update", Some((0, 3)));
    assert_eq!(back, data);
}

/// TD_COAP_BLOCK_04: POST with Block1, final 2.01.
#[test]
fn td_coap_block_04_post() {
    let mut h = server(ServerConfig::default());
    let data = body(2100);
    let answers = upload(&mut h, PEER, Code::POST, "/large-create", &data, 5, None);
    assert_continues(&answers, 5);
    assert_eq!(answers.last().unwrap().code(), Code::CREATED);
    assert_eq!(h.state.created, [data]);
}

/// TD_COAP_BLOCK_05 (RFC 7959 §2.7): POST with Block1 whose answer is
/// large: the final block's answer carries Block1 and the first Block2
/// block; the client fetches the rest with Block2 and no Block1, served
/// from the kept response (the POST handler runs once).
#[test]
fn td_coap_block_05_two_way() {
    let mut h = server(ServerConfig::default());
    let data = body(1500);
    let answers = upload(&mut h, PEER, Code::POST, "/large-post", &data, 6, None);
    assert_continues(&answers, 6);
    let last = answers.last().unwrap();
    assert_eq!(last.code(), Code::CHANGED);
    assert_eq!(block1_of(last), Some(Block::new(1, false, 6).unwrap()));
    let b2 = block2_of(last).unwrap();
    assert_eq!((b2.num(), b2.more(), b2.szx()), (0, true, 6));
    assert_eq!(uint(last, OptionNumber::SIZE2), Some(1500));
    let etag = last.option(OptionNumber::ETAG).unwrap().to_vec();
    let mut got = last.payload().to_vec();
    assert_eq!(h.server.transfer_count(), 1, "the response is kept");
    let mut r = req(Code::POST, "/large-post");
    r.add_option_uint(
        OptionNumber::BLOCK2,
        Block::new(1, false, 6).unwrap().to_uint(),
    );
    let m = h.ask(r);
    assert_eq!(
        (m.code(), block2_of(&m)),
        (Code::CHANGED, Some(Block::new(1, false, 6).unwrap()))
    );
    assert_eq!(block1_of(&m), None);
    assert_eq!(m.option(OptionNumber::ETAG), Some(&etag[..]));
    got.extend_from_slice(m.payload());
    let mut expect = data;
    expect.reverse();
    assert_eq!(got, expect);
    assert_eq!(h.state.posts, 1);
    assert_eq!(h.server.transfer_count(), 0, "dropped after the last block");
    // Without a kept response, a follow-up block is 4.08 (the POST is not re-run).
    let mut r = req(Code::POST, "/large-post");
    r.add_option_uint(
        OptionNumber::BLOCK2,
        Block::new(1, false, 6).unwrap().to_uint(),
    );
    assert_eq!(h.ask(r).code(), Code::REQUEST_ENTITY_INCOMPLETE);
    assert_eq!(h.state.posts, 1);
}

/// RFC 7959 §2.5: "4.08 ... for any (final or non-final) Block1 transfer
/// that is not in sequence"; a gap drops the transfer; a first request
/// with NUM > 0 has nothing to continue.
#[test]
fn block1_out_of_sequence_is_4_08() {
    let mut h = server(ServerConfig::default());
    let block = |num: u32, more: bool| {
        let mut r = req(Code::PUT, "/large-update");
        r.add_option_uint(
            OptionNumber::BLOCK1,
            Block::new(num, more, 2).unwrap().to_uint(),
        );
        r.set_payload(vec![num as u8; 64]);
        r
    };
    assert_eq!(
        h.ask(block(3, true)).code(),
        Code::REQUEST_ENTITY_INCOMPLETE
    );
    assert_eq!(h.ask(block(0, true)).code(), Code::CONTINUE);
    assert_eq!(
        h.ask(block(2, true)).code(),
        Code::REQUEST_ENTITY_INCOMPLETE
    );
    assert_eq!(h.server.transfer_count(), 0, "the gap ended the transfer");
    assert_eq!(
        h.ask(block(1, false)).code(),
        Code::REQUEST_ENTITY_INCOMPLETE,
        "the final block alone is not a body"
    );
    assert_eq!(h.state.update, body(100), "nothing was stored");
    assert_eq!(h.server.stats().incomplete, 3);
}

/// A block sent again (its 2.31 was lost and the client retried with a new
/// message ID) is acknowledged again without being appended twice.
#[test]
fn block1_repeated_block_is_acknowledged_again() {
    let mut h = server(ServerConfig::default());
    let block = |num: u32, more: bool, byte: u8| {
        let mut r = req(Code::PUT, "/large-update");
        r.add_option_uint(
            OptionNumber::BLOCK1,
            Block::new(num, more, 0).unwrap().to_uint(),
        );
        r.set_payload(vec![byte; 16]);
        r
    };
    assert_eq!(h.ask(block(0, true, 1)).code(), Code::CONTINUE);
    assert_eq!(h.ask(block(1, true, 2)).code(), Code::CONTINUE);
    let again = h.ask(block(1, true, 2));
    assert_eq!(
        (again.code(), block1_of(&again)),
        (Code::CONTINUE, Some(Block::new(1, true, 0).unwrap()))
    );
    assert_eq!(h.ask(block(2, false, 3)).code(), Code::CHANGED);
    assert_eq!(h.state.update, [[1u8; 16], [2; 16], [3; 16]].concat());
}

/// RFC 7959 §2.3: with M set the payload must be exactly the block size.
#[test]
fn block1_payload_size_mismatch_is_4_00() {
    let mut h = server(ServerConfig::default());
    let mut r = req(Code::PUT, "/large-update");
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(0, true, 2).unwrap().to_uint(),
    );
    r.set_payload(vec![0; 63]);
    assert_eq!(h.ask(r).code(), Code::BAD_REQUEST);
    let mut r = req(Code::PUT, "/large-update");
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(0, false, 2).unwrap().to_uint(),
    );
    r.set_payload(vec![0; 65]);
    assert_eq!(h.ask(r).code(), Code::BAD_REQUEST);
}

/// RFC 7959 §2.3: blocks with another Content-Format are not assembled
/// with the first ("usually leads to a 4.08").
#[test]
fn block1_content_format_change_is_4_08() {
    let mut h = server(ServerConfig::default());
    let mut r = req(Code::PUT, "/large-update");
    r.add_option_uint(OptionNumber::CONTENT_FORMAT, 0);
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(0, true, 0).unwrap().to_uint(),
    );
    r.set_payload(vec![0; 16]);
    assert_eq!(h.ask(r).code(), Code::CONTINUE);
    let mut r = req(Code::PUT, "/large-update");
    r.add_option_uint(OptionNumber::CONTENT_FORMAT, 50);
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(1, false, 0).unwrap().to_uint(),
    );
    r.set_payload(vec![0; 16]);
    assert_eq!(h.ask(r).code(), Code::REQUEST_ENTITY_INCOMPLETE);
}

/// RFC 7959 §2.9.3 and RFC 7252 §5.10.9: 4.13 with Size1 (the largest body
/// accepted) when the announced Size1 is too large, and when the body grows
/// past the limit.
#[test]
fn block1_too_large_is_4_13_with_size1() {
    let mut h = server(ServerConfig::default());
    // /large-create accepts 4096 bytes.
    let mut r = req(Code::POST, "/large-create");
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(0, true, 6).unwrap().to_uint(),
    );
    r.add_option_uint(OptionNumber::SIZE1, 5000);
    r.set_payload(vec![0; 1024]);
    let m = h.ask(r);
    assert_eq!(
        (m.code(), uint(&m, OptionNumber::SIZE1)),
        (Code::REQUEST_ENTITY_TOO_LARGE, Some(4096))
    );
    assert_eq!(h.server.transfer_count(), 0);
    // Without Size1: the fifth KiB is refused.
    let mut codes = Vec::new();
    for num in 0..6 {
        let mut r = req(Code::POST, "/large-create");
        r.add_option_uint(
            OptionNumber::BLOCK1,
            Block::new(num, true, 6).unwrap().to_uint(),
        );
        r.set_payload(vec![0; 1024]);
        let m = h.ask(r);
        codes.push((m.code(), uint(&m, OptionNumber::SIZE1)));
    }
    assert_eq!(codes[..4], [(Code::CONTINUE, None); 4]);
    assert_eq!(codes[4], (Code::REQUEST_ENTITY_TOO_LARGE, Some(4096)));
    assert_eq!(
        codes[5].0,
        Code::REQUEST_ENTITY_INCOMPLETE,
        "the transfer was dropped"
    );
    assert_eq!(
        (h.server.transfer_count(), h.server.transfer_memory()),
        (0, 0)
    );
    assert_eq!(h.server.stats().too_large, 2);
}

/// RFC 7959 §2.5 (server preference): a first block larger than the
/// server's preferred Block1 size gets a 2.31 with the smaller SZX, and the
/// client continues at the same byte offset in smaller blocks.
#[test]
fn block1_server_prefers_smaller_blocks() {
    let mut cfg = ServerConfig::default();
    cfg.block1_szx = 2;
    let mut h = server(cfg);
    let data = body(1024 + 64 * 3 + 10);
    let mut r = req(Code::PUT, "/large-update");
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(0, true, 6).unwrap().to_uint(),
    );
    r.set_payload(data[..1024].to_vec());
    let m = h.ask(r);
    assert_eq!(
        (m.code(), block1_of(&m)),
        (Code::CONTINUE, Some(Block::new(0, true, 2).unwrap()))
    );
    for (i, chunk) in data[1024..].chunks(64).enumerate() {
        let num = 16 + i as u32;
        let more = 1024 + (i + 1) * 64 < data.len();
        let mut r = req(Code::PUT, "/large-update");
        r.add_option_uint(
            OptionNumber::BLOCK1,
            Block::new(num, more, 2).unwrap().to_uint(),
        );
        r.set_payload(chunk.to_vec());
        let m = h.ask(r);
        assert_eq!(m.code(), if more { Code::CONTINUE } else { Code::CHANGED });
    }
    assert_eq!(h.state.update, data);
}

/// RFC 9175 §3: Request-Tag keeps two concurrent uploads to the same
/// resource from the same peer apart; an absent Request-Tag and an empty
/// one are different tags; another peer is another transfer.
#[test]
fn request_tag_separates_uploads() {
    let mut h = server(ServerConfig::default());
    let bodies: Vec<Vec<u8>> = (0..4).map(|k| vec![b'a' + k; 16 * 3 + 5]).collect();
    let tags: [(u32, Option<&[u8]>); 4] = [
        (PEER, Some(b"A")),
        (PEER, Some(b"B")),
        (PEER, None),
        (PEER, Some(b"")),
    ];
    // Interleave the blocks of the four uploads.
    for num in 0..4u32 {
        for ((peer, tag), data) in tags.iter().zip(&bodies) {
            let chunk = &data[num as usize * 16..((num as usize + 1) * 16).min(data.len())];
            let mut r = req(Code::POST, "/large-create");
            if let Some(t) = tag {
                r.add_option(OptionNumber::REQUEST_TAG, t);
            }
            r.add_option_uint(
                OptionNumber::BLOCK1,
                Block::new(num, num < 3, 0).unwrap().to_uint(),
            );
            r.set_payload(chunk.to_vec());
            let m = h.ask_from(*peer, r);
            assert_eq!(
                m.code(),
                if num < 3 {
                    Code::CONTINUE
                } else {
                    Code::CREATED
                }
            );
        }
        if num == 0 {
            assert_eq!(h.server.transfer_count(), 4);
        }
    }
    assert_eq!(h.state.created, bodies);
    // Same tag, other peer: separate too.
    let a = upload(
        &mut h,
        100,
        Code::POST,
        "/large-create",
        &bodies[0],
        0,
        Some(b"A"),
    );
    assert_eq!(a.last().unwrap().code(), Code::CREATED);
}

/// A new block 0 with the same key restarts the transfer (RFC 7959 §2.5:
/// "simply overwrites the context").
#[test]
fn block1_restart_overwrites() {
    let mut h = server(ServerConfig::default());
    // Start a transfer, abandon it after one block, restart it.
    let mut r = req(Code::PUT, "/large-update");
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(0, true, 0).unwrap().to_uint(),
    );
    r.set_payload(vec![9; 16]);
    assert_eq!(h.ask(r).code(), Code::CONTINUE);
    let data = body(40);
    let answers = upload(&mut h, PEER, Code::PUT, "/large-update", &data, 0, None);
    assert_eq!(answers.last().unwrap().code(), Code::CHANGED);
    assert_eq!(h.state.update, data);
    assert_eq!(h.server.transfer_count(), 0);
}

/// RFC 7959 §2.5: a server may discard a partial body after
/// EXCHANGE_LIFETIME; the next block is then 4.08. `poll_timeout` tells
/// when; the work is bounded per call.
#[test]
fn stale_transfers_expire() {
    let mut h = server(ServerConfig::default());
    let mut r = req(Code::PUT, "/large-update");
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(0, true, 0).unwrap().to_uint(),
    );
    r.set_payload(vec![1; 16]);
    assert_eq!(h.ask(r).code(), Code::CONTINUE);
    let deadline = h.now + Duration::from_secs(247);
    assert_eq!(h.server.poll_timeout(), Some(deadline));
    h.server
        .handle_timeout(h.now + Duration::from_millis(246_999));
    assert_eq!(h.server.transfer_count(), 1);
    h.server.handle_timeout(deadline);
    assert_eq!(
        (h.server.transfer_count(), h.server.transfer_memory()),
        (0, 0)
    );
    assert_eq!(h.server.stats().transfers_expired, 1);
    assert_eq!(h.server.poll_timeout(), None);
    h.now = deadline;
    let mut r = req(Code::PUT, "/large-update");
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(1, false, 0).unwrap().to_uint(),
    );
    r.set_payload(vec![2; 16]);
    assert_eq!(h.ask(r).code(), Code::REQUEST_ENTITY_INCOMPLETE);
}

/// Expiry also happens on the way, without `handle_timeout`: a request
/// after the lifetime finds the old transfer gone.
#[test]
fn stale_transfers_expire_during_handle() {
    let mut h = server(ServerConfig::default());
    let mut r = req(Code::PUT, "/large-update");
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(0, true, 0).unwrap().to_uint(),
    );
    r.set_payload(vec![1; 16]);
    h.ask(r);
    h.now += Duration::from_secs(300);
    h.ask(req(Code::GET, "/large-update"));
    assert_eq!(h.server.transfer_count(), 0);
}

/// The count bound: when `max_transfers` uploads are open, a new one gets
/// 4.13 (RFC 7959 §2.5: "does not currently have the resources"), without
/// Size1; the open ones continue.
#[test]
fn transfer_count_is_bounded() {
    let mut cfg = ServerConfig::default();
    cfg.max_transfers = 10;
    let mut h = server(cfg);
    let first = |peer: u32, h: &mut H<Store>| {
        let mut r = req(Code::PUT, "/large-update");
        r.add_option_uint(
            OptionNumber::BLOCK1,
            Block::new(0, true, 0).unwrap().to_uint(),
        );
        r.set_payload(vec![peer as u8; 16]);
        h.ask_from(peer, r)
    };
    for p in 0..10 {
        assert_eq!(first(1000 + p, &mut h).code(), Code::CONTINUE);
    }
    let m = first(2000, &mut h);
    assert_eq!(
        (m.code(), uint(&m, OptionNumber::SIZE1)),
        (Code::REQUEST_ENTITY_TOO_LARGE, None)
    );
    let mut r = req(Code::PUT, "/large-update");
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(1, false, 0).unwrap().to_uint(),
    );
    r.set_payload(vec![1; 5]);
    assert_eq!(h.ask_from(1003, r).code(), Code::CHANGED);
    assert_eq!(h.server.transfer_count(), 9);
}

/// The memory bound: 10 000 concurrent partial Block1 uploads from distinct
/// peers never push reassembly memory above `max_transfer_memory`; the ones
/// that do not fit get 4.13, and everything is freed after the lifetime.
#[test]
fn ten_thousand_partial_uploads_stay_within_memory() {
    let mut cfg = ServerConfig::default();
    cfg.max_transfer_memory = 1024 * 1024;
    cfg.max_transfers = 100_000;
    let total = cfg.max_transfer_memory;
    let mut h = server(cfg);
    let (mut accepted, mut refused) = (0, 0);
    for peer in 0..10_000u32 {
        let mut r = req(Code::PUT, "/large-update");
        r.add_option(OptionNumber::REQUEST_TAG, peer.to_be_bytes());
        r.add_option_uint(
            OptionNumber::BLOCK1,
            Block::new(0, true, 6).unwrap().to_uint(),
        );
        r.set_payload(vec![peer as u8; 1024]);
        let m = h.ask_from(10_000 + peer, r);
        match m.code() {
            Code::CONTINUE => accepted += 1,
            Code::REQUEST_ENTITY_TOO_LARGE => refused += 1,
            c => panic!("unexpected {c}"),
        }
        assert!(
            h.server.transfer_memory() <= total,
            "memory {} above {total}",
            h.server.transfer_memory()
        );
    }
    let per = TRANSFER_BYTES + 5 + 1024;
    assert_eq!(accepted, total / per, "as many as fit");
    assert_eq!(accepted + refused, 10_000);
    // Second blocks of the accepted ones: still within the bound (some are
    // refused: their buffers would have to grow).
    for peer in 0..10_000u32 {
        let mut r = req(Code::PUT, "/large-update");
        r.add_option(OptionNumber::REQUEST_TAG, peer.to_be_bytes());
        r.add_option_uint(
            OptionNumber::BLOCK1,
            Block::new(1, true, 6).unwrap().to_uint(),
        );
        r.set_payload(vec![peer as u8; 1024]);
        h.ask_from(10_000 + peer, r);
        assert!(h.server.transfer_memory() <= total);
    }
    h.server.handle_timeout(h.now + Duration::from_secs(247));
    assert_eq!(
        (h.server.transfer_count(), h.server.transfer_memory()),
        (0, 0)
    );
}

/// `stream_blocks`: the handler sees every block in order with its offset
/// and `last`; its 2.31 gets the Block1 echo; a block out of sequence is
/// 4.08 and never reaches the handler.
#[test]
fn streamed_upload() {
    let mut h = server(ServerConfig::default());
    let data = body(16 * 4 + 3);
    let answers = upload(&mut h, PEER, Code::PUT, "/stream", &data, 0, None);
    assert_continues(&answers, 0);
    let last = answers.last().unwrap();
    assert_eq!(
        (last.code(), block1_of(last)),
        (Code::CHANGED, Some(Block::new(4, false, 0).unwrap()))
    );
    let offsets: Vec<(usize, bool)> = h.state.chunks.iter().map(|(o, l, _)| (*o, *l)).collect();
    assert_eq!(
        offsets,
        [
            (0, false),
            (16, false),
            (32, false),
            (48, false),
            (64, true)
        ]
    );
    let joined: Vec<u8> = h.state.chunks.iter().flat_map(|c| c.2.clone()).collect();
    assert_eq!(joined, data);
    assert_eq!(h.server.transfer_count(), 0);
    assert_eq!(h.server.transfer_memory(), 0);

    h.state.chunks.clear();
    let mut r = req(Code::PUT, "/stream");
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(0, true, 0).unwrap().to_uint(),
    );
    r.set_payload(vec![0; 16]);
    assert_eq!(h.ask(r).code(), Code::CONTINUE);
    let mut r = req(Code::PUT, "/stream");
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(2, true, 0).unwrap().to_uint(),
    );
    r.set_payload(vec![0; 16]);
    assert_eq!(h.ask(r).code(), Code::REQUEST_ENTITY_INCOMPLETE);
    assert_eq!(h.state.chunks.len(), 1);
}

/// A streamed transfer costs no buffer: only its bookkeeping counts.
#[test]
fn streamed_upload_holds_no_buffer() {
    let mut h = server(ServerConfig::default());
    let mut r = req(Code::PUT, "/stream");
    r.add_option_uint(
        OptionNumber::BLOCK1,
        Block::new(0, true, 6).unwrap().to_uint(),
    );
    r.set_payload(vec![0; 1024]);
    h.ask(r);
    assert_eq!(h.server.transfer_memory(), TRANSFER_BYTES);
}

/// The final block's handler may answer later; the separate answer still
/// carries the Block1 echo (RFC 7959 §2.3).
#[test]
fn block1_final_answer_later() {
    let mut h = server(ServerConfig::default());
    let data = body(40);
    let mut answers = Vec::new();
    for (i, c) in data.chunks(16).enumerate() {
        let mut r = req(Code::PUT, "/slow-upload");
        r.add_option_uint(
            OptionNumber::BLOCK1,
            Block::new(i as u32, i < 2, 0).unwrap().to_uint(),
        );
        r.set_payload(c.to_vec());
        answers.extend(h.send_from(PEER, r));
    }
    assert_eq!(answers.last().unwrap().code(), Code::EMPTY);
    let handle = h.state.later.pop().unwrap();
    h.server
        .respond(
            &mut h.ep,
            h.now,
            handle,
            MessageBuf::new(MessageType::Con, Code::CHANGED),
        )
        .unwrap();
    let out = h.drain();
    assert_eq!(
        (out[0].code(), block1_of(&out[0])),
        (Code::CHANGED, Some(Block::new(2, false, 0).unwrap()))
    );
}

/// No input breaks the layer: a deterministic storm of requests with random
/// methods, paths and Block1/Block2/Size/ETag/Request-Tag options never
/// panics, always gets at most one answer, and keeps memory bounded.
#[test]
fn random_requests_never_panic() {
    let mut cfg = ServerConfig::default();
    cfg.max_transfer_memory = 64 * 1024;
    let total = cfg.max_transfer_memory;
    let mut h = server(cfg);
    let mut x: u64 = 0x1234_5678_9abc_def0;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let paths = [
        "/large",
        "/large-update",
        "/large-create",
        "/large-post",
        "/stream",
        "/nope",
        "/.well-known/core",
    ];
    let codes = [Code::GET, Code::POST, Code::PUT, Code::DELETE, Code::FETCH];
    for _ in 0..20_000 {
        let v = rnd();
        let mut r = req(codes[(v % 5) as usize], paths[((v >> 3) % 7) as usize]);
        let opt = rnd();
        if opt & 1 != 0 {
            r.add_option_uint(
                OptionNumber::BLOCK1,
                (rnd() & 0x3f_ffff) as u32 & !0x0f | (rnd() % 8) as u32 | ((opt as u32 >> 8) & 8),
            );
        }
        if opt & 2 != 0 {
            r.add_option_uint(OptionNumber::BLOCK2, (rnd() % 64) as u32);
        }
        if opt & 4 != 0 {
            r.add_option_uint(OptionNumber::SIZE1, rnd() as u32);
        }
        if opt & 8 != 0 {
            r.add_option(OptionNumber::REQUEST_TAG, [(opt >> 16) as u8 % 3]);
        }
        if opt & 16 != 0 {
            r.add_option(OptionNumber::ETAG, (rnd() % 4).to_be_bytes());
        }
        if opt & 32 != 0 {
            r.add_option(OptionNumber::IF_MATCH, []);
        }
        let len = [0usize, 16, 64, 1024, 5][(opt >> 6) as usize % 5];
        r.set_payload(vec![0x55; len]);
        let out = h.send_from((opt >> 20) as u32 % 8, r);
        assert!(out.len() <= 1);
        assert!(h.server.transfer_memory() <= total);
        if rnd() % 500 == 0 {
            h.now += Duration::from_secs(100);
        }
    }
    assert!(h.server.stats().requests >= 19_000);
}

/// Shared state through `Rc<RefCell<..>>` works as well as `S`.
#[test]
fn handlers_can_capture_state() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    let mut s: Server<u32> = Server::new(ServerConfig::default());
    s.add(Resource::new("/up").put(move |(), r| {
        s2.borrow_mut().extend_from_slice(r.body);
        Reply::status(Code::CHANGED)
    }))
    .unwrap();
    let mut h = H::new(s, ());
    for (i, c) in body(50).chunks(16).enumerate() {
        let mut r = req(Code::PUT, "/up");
        r.add_option_uint(
            OptionNumber::BLOCK1,
            Block::new(i as u32, i < 3, 0).unwrap().to_uint(),
        );
        r.set_payload(c.to_vec());
        h.ask(r);
    }
    assert_eq!(*seen.borrow(), body(50));
}

// ----- the representation cache (RFC 7959 §2.4) ------------------------------

/// /big (GET counting the handler's calls, PUT overwriting the start),
/// /versioned (GET with the version as ETag, and a state probe), /probed
/// (the same probe, a handler that sets no ETag), /fresh (Max-Age 0).
#[derive(Default)]
struct Counted {
    data: Vec<u8>,
    calls: u32,
    version: u64,
}

fn counted(cfg: ServerConfig, len: usize) -> H<Counted> {
    let mut s: Server<u32, Counted> = Server::new(cfg);
    s.add(
        Resource::new("/big")
            .observable()
            .get(|st: &mut Counted, _| {
                st.calls += 1;
                Reply::content(ContentFormat::OCTET_STREAM, st.data.clone())
            })
            .put(|st: &mut Counted, r| {
                let n = r.body.len().min(st.data.len());
                st.data[..n].copy_from_slice(&r.body[..n]);
                Reply::status(Code::CHANGED)
            }),
    )
    .unwrap();
    s.add(
        Resource::new("/versioned")
            .state(|st: &Counted| ResourceState::Present(Some(ETag::from_u64(st.version))))
            .get(|st: &mut Counted, _| {
                st.calls += 1;
                let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
                m.add_option(OptionNumber::ETAG, ETag::from_u64(st.version).as_bytes());
                m.set_payload(st.data.clone());
                Reply::Now(m)
            }),
    )
    .unwrap();
    s.add(
        Resource::new("/probed")
            .state(|st: &Counted| ResourceState::Present(Some(ETag::from_u64(st.version))))
            .get(|st: &mut Counted, _| {
                st.calls += 1;
                Reply::content(ContentFormat::OCTET_STREAM, st.data.clone())
            }),
    )
    .unwrap();
    s.add(
        Resource::new("/fresh")
            .max_age(0)
            .get(|st: &mut Counted, _| {
                st.calls += 1;
                Reply::content(ContentFormat::OCTET_STREAM, st.data.clone())
            }),
    )
    .unwrap();
    H::new(
        s,
        Counted {
            data: body(len),
            ..Counted::default()
        },
    )
}

fn get_query(path: &str, query: &str, num: u32, szx: u8) -> MessageBuf {
    let mut m = get_block(path, num, szx);
    m.add_option(OptionNumber::URI_QUERY, query);
    m
}

/// Downloads `path` block by block from `peer` at `szx`; returns the body
/// and the ETag of each block.
#[track_caller]
fn download<S>(h: &mut H<S>, peer: u32, path: &str, szx: u8) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    let mut etags = Vec::new();
    let mut num = 0;
    loop {
        let m = h.ask_from(peer, get_block(path, num, szx));
        assert_eq!(m.code(), Code::CONTENT);
        let b = block2_of(&m).unwrap();
        assert_eq!(b.num(), num);
        out.extend_from_slice(m.payload());
        etags.push(m.option(OptionNumber::ETAG).unwrap().to_vec());
        if !b.more() {
            return (out, etags);
        }
        num += 1;
    }
}

/// RFC 7959 §2.4: the follow-up blocks of a 1 MiB representation are
/// sliced from the kept copy: the handler runs once for the 1024 blocks.
#[test]
fn whole_mib_download_runs_the_handler_once() {
    let mut h = counted(ServerConfig::default(), 1024 * 1024);
    let (got, etags) = download(&mut h, PEER, "/big", 6);
    assert_eq!(got, h.state.data);
    assert_eq!(etags.len(), 1024);
    assert!(etags.iter().all(|e| *e == etags[0]), "one representation");
    assert_eq!(h.state.calls, 1);
    assert_eq!(h.server.stats().cache_hits, 1023);
    assert_eq!(h.server.stats().cache_stores, 1);
    assert_eq!(h.server.cached_representations(), 1);
}

/// A state probe whose ETag the handler does not put on its answers (the
/// layer's own ETag goes there): the kept copy is checked against the
/// probe's state when it was made, so the follow-up blocks still come from
/// it, and a change of state (without an invalidation) is still seen.
#[test]
fn state_probe_checks_the_kept_copy_against_the_state_it_was_made_in() {
    let mut h = counted(ServerConfig::default(), 5000);
    let (got, _) = download(&mut h, PEER, "/probed", 4);
    assert_eq!(got, h.state.data);
    assert_eq!(h.state.calls, 1, "every block ran the handler");
    h.state.version += 1;
    h.state.data[0] ^= 0xff;
    let (got, _) = download(&mut h, PEER, "/probed", 4);
    assert_eq!(got, h.state.data);
    assert_eq!(h.state.calls, 2);
}

/// RFC 7959 §2.4 (random access): the first request may ask for any block;
/// the representation is kept from there, and block 0 comes from it.
#[test]
fn random_access_first_then_from_the_kept_copy() {
    let mut h = counted(ServerConfig::default(), 5000);
    let m = h.ask(get_block("/big", 3, 4));
    assert_eq!(block2_of(&m).map(|b| (b.num(), b.more())), Some((3, true)));
    assert_eq!(m.payload(), &h.state.data[768..1024]);
    let (got, _) = download(&mut h, PEER, "/big", 4);
    assert_eq!(got, h.state.data);
    assert_eq!(h.state.calls, 1);
    // Past the end, from the kept copy too: 4.02 as without a cache.
    assert_eq!(h.ask(get_block("/big", 400, 4)).code(), Code::BAD_OPTION);
    assert_eq!(h.state.calls, 1);
}

/// RFC 7959 §2.4: a representation that changed between blocks comes with
/// a new ETag. Changes reach the cache through `invalidate`,
/// `notify_changed`, an unsafe request to the resource, or the resource's
/// state probe.
#[test]
fn change_mid_transfer_gives_a_new_etag() {
    let mut h = counted(ServerConfig::default(), 3000);
    let id = h.server.find("/big").unwrap();
    let first = h.ask(get_block("/big", 0, 6));
    let old = first.option(OptionNumber::ETAG).unwrap().to_vec();

    // A PUT from another client (RFC 7252 §5.8.3) drops the kept copy.
    let mut put = req(Code::PUT, "/big");
    put.set_payload(vec![b'#'; 1000]);
    assert_eq!(h.ask_from(PEER + 1, put).code(), Code::CHANGED);
    assert_eq!(h.server.cached_representations(), 0);
    let second = h.ask(get_block("/big", 1, 6));
    let new = second.option(OptionNumber::ETAG).unwrap().to_vec();
    assert_ne!(old, new);
    assert_eq!(second.payload(), &h.state.data[1024..2048]);
    assert_eq!(h.state.calls, 2);

    // notify_changed marks the change too.
    h.state.data[2100] ^= 1;
    let now = h.now;
    h.server.notify_changed(&mut h.ep, now, id, &mut h.state);
    let third = h.ask(get_block("/big", 2, 6));
    assert_ne!(third.option(OptionNumber::ETAG).unwrap(), &new[..]);
    assert_eq!(h.state.calls, 3);

    // invalidate, for changes made by other means.
    let etag3 = third.option(OptionNumber::ETAG).unwrap().to_vec();
    h.state.data[0] ^= 1;
    h.server.invalidate(id);
    let fourth = h.ask(get_block("/big", 0, 6));
    assert_ne!(fourth.option(OptionNumber::ETAG).unwrap(), &etag3[..]);
    assert_eq!(h.state.calls, 4);

    // A change nobody marks is not seen until the copy expires: the same
    // (kept) representation, whole and consistent with its ETag.
    let etag4 = fourth.option(OptionNumber::ETAG).unwrap().to_vec();
    let kept = h.state.data.clone();
    h.state.data[1500] ^= 1;
    let fifth = h.ask(get_block("/big", 1, 6));
    assert_eq!(fifth.option(OptionNumber::ETAG).unwrap(), &etag4[..]);
    assert_eq!(fifth.payload(), &kept[1024..2048]);
    assert_eq!(h.state.calls, 4);

    // A resource with a state probe: a new state ETag drops the copy.
    let m = h.ask(get_block("/versioned", 0, 6));
    assert_eq!(m.option(OptionNumber::ETAG), Some(&[0u8][..]));
    h.state.version = 1;
    h.state.data[1030] ^= 1;
    let m = h.ask(get_block("/versioned", 1, 6));
    assert_eq!(m.option(OptionNumber::ETAG), Some(&[1u8][..]));
    assert_eq!(m.payload(), &h.state.data[1024..2048]);
    assert_eq!(h.state.calls, 6);
}

/// Two clients downloading the same representation share one kept copy.
#[test]
fn two_peers_share_one_entry() {
    let mut h = counted(ServerConfig::default(), 10 * 1024);
    let (a, b) = (PEER, PEER + 1);
    let mut bodies = [Vec::new(), Vec::new()];
    for num in 0..10 {
        for (i, peer) in [a, b].into_iter().enumerate() {
            let m = h.ask_from(peer, get_block("/big", num, 6));
            assert_eq!(block2_of(&m).map(Block::num), Some(num));
            bodies[i].extend_from_slice(m.payload());
        }
    }
    assert_eq!(bodies[0], h.state.data);
    assert_eq!(bodies[1], h.state.data);
    assert_eq!(h.state.calls, 1);
    assert_eq!(h.server.cached_representations(), 1);
}

/// The cache bounds: at most `max_cached_representations` entries and
/// `max_cache_memory` bytes; when full, the least recently used entry goes;
/// a representation larger than the memory bound alone is not kept (its
/// blocks run the handler each).
#[test]
fn cache_bound_and_lru_eviction() {
    let mut cfg = ServerConfig::default();
    cfg.max_cached_representations = 2;
    let mut h = counted(cfg, 3000);
    // The query selects the representation: three entries' worth.
    h.ask(get_query("/big", "x=1", 0, 6));
    h.ask(get_query("/big", "x=2", 0, 6));
    assert_eq!((h.server.cached_representations(), h.state.calls), (2, 2));
    h.ask(get_query("/big", "x=1", 1, 6)); // x=1 is now the most recent
    assert_eq!(h.state.calls, 2);
    h.ask(get_query("/big", "x=3", 0, 6)); // evicts x=2
    assert_eq!((h.server.cached_representations(), h.state.calls), (2, 3));
    h.ask(get_query("/big", "x=1", 2, 6));
    assert_eq!(h.state.calls, 3, "x=1 kept");
    h.ask(get_query("/big", "x=2", 1, 6));
    assert_eq!(h.state.calls, 4, "x=2 was evicted");

    // Memory: room for one 3000-byte representation only.
    let mut cfg = ServerConfig::default();
    cfg.max_cache_memory = 4000;
    let mut h = counted(cfg, 3000);
    h.ask(get_query("/big", "x=1", 0, 6));
    let one = h.server.cache_memory();
    assert!(one > 3000 && one <= 4000, "{one}");
    h.ask(get_query("/big", "x=2", 0, 6));
    assert_eq!(h.server.cached_representations(), 1);
    assert_eq!(h.server.cache_memory(), one);
    h.ask(get_query("/big", "x=1", 1, 6));
    assert_eq!(h.state.calls, 3, "x=1 was evicted for x=2");

    // Larger than the bound: not kept at all.
    h.state.data = body(5000);
    h.state.calls = 0;
    let (got, _) = download(&mut h, PEER, "/big", 6);
    assert_eq!(got, h.state.data);
    assert_eq!(h.state.calls, 5);
    assert!(h.server.cache_memory() <= 4000);

    // max_cached_representations = 0 disables the cache.
    let mut cfg = ServerConfig::default();
    cfg.max_cached_representations = 0;
    let mut h = counted(cfg, 3000);
    download(&mut h, PEER, "/big", 6);
    assert_eq!((h.state.calls, h.server.cached_representations()), (3, 0));
}

/// The kept copy lives as long as its Max-Age (default 60 s, RFC 7252
/// §5.10.5): `poll_timeout` shows the instant, `handle_timeout` drops it;
/// a representation with Max-Age 0 is not kept. The cache is part of the
/// layer's memory figure.
#[test]
fn kept_copy_expires_with_max_age_and_counts_in_memory() {
    let mut h = counted(ServerConfig::default(), 3000);
    let t0 = h.now;
    h.ask(get_block("/big", 0, 6));
    assert_eq!(h.server.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    let mem = h.server.cache_memory();
    assert!(mem >= 3000 + coap_proto::server::CACHE_ENTRY_BYTES);
    assert_eq!(h.server.memory_usage(), mem + h.server.transfer_memory());
    h.server.handle_timeout(t0 + Duration::from_millis(59_999));
    assert_eq!(h.server.cached_representations(), 1);
    h.server.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(
        (h.server.cached_representations(), h.server.cache_memory()),
        (0, 0)
    );
    assert_eq!(h.server.memory_usage(), 0);

    h.state.calls = 0;
    let (got, _) = download(&mut h, PEER, "/fresh", 6);
    assert_eq!(got, h.state.data);
    assert_eq!((h.state.calls, h.server.cached_representations()), (3, 0));
}

/// RFC 7252 §5.10.6.2: a block request whose ETag is the kept copy's gets
/// 2.03 Valid without running the handler.
#[test]
fn kept_copy_validates_etags() {
    let mut h = counted(ServerConfig::default(), 3000);
    let m = h.ask(get_block("/big", 0, 6));
    let etag = m.option(OptionNumber::ETAG).unwrap().to_vec();
    let mut r = get_block("/big", 1, 6);
    r.add_option(OptionNumber::ETAG, etag.clone());
    let v = h.ask(r);
    assert_eq!(v.code(), Code::VALID);
    assert_eq!(v.option(OptionNumber::ETAG), Some(&etag[..]));
    assert_eq!(h.state.calls, 1);
}
