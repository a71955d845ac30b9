//! The `coap` client commands end to end (`get`, `post`, `put`, `delete`,
//! `fetch`, `discover`, `ping`, `-v`) and `interop/coap-adapter.sh`, against
//! a small server in the test process: a `UdpEndpoint` in a thread, bound to
//! an ephemeral loopback port, answering by path.
//!
//! Server resources:
//! - `/hello`: 2.05 "hello world" (Content-Format 0)
//! - `/binary`: 2.05 with bytes that are not text (printed byte for byte)
//! - `/echo`: 2.05 describing the request: `type=`, `code=`, one
//!   `opt=NUM:HEX` line per option and `payload=HEX`
//! - `/boom`: 5.00 "it broke"; anything else: 4.04 "no such resource: PATH"
//! - `/big`: 200 bytes in Block2 blocks of at most 64 bytes (RFC 7959
//!   §2.4: the block the request asks for, at its size or 64)
//! - `/.well-known/core`: link-format, filtered by Uri-Query (RFC 6690 §4.1)
//! - `/custom/links`: a second link-format document
#![cfg(feature = "cli")]

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use coap_proto::endpoint::{Config, Event};
use coap_proto::message::link::{Filter, LinkFormat};
use coap_proto::udp::UdpEndpoint;
use coap_proto::{Block, Code, Message, MessageBuf, MessageType, OptionNumber};

// ---------------------------------------------------------------------------
// The in-test server

const LINKS: &str =
    r#"</hello>;rt="greeting";ct=0,</echo>;if="debug",</obs>;obs;rt="observe",</big>"#;

/// A server thread; stopped and joined on drop.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves on `bind` (port 0), or `None` when it cannot be bound (no
    /// IPv6 on this machine, ...).
    fn try_start(bind: SocketAddr) -> Option<Self> {
        let mut ep = UdpEndpoint::bind(bind, Config::default()).ok()?;
        let addr = ep.local_addr().ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                ep.turn(Some(Duration::from_millis(20)), |ep, now, event| {
                    if let Event::Request(req) = event {
                        let answer = answer(&req.message());
                        let _ = ep.respond(now, req.handle, &answer);
                    }
                })
                .expect("server turn");
            }
        });
        Some(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    fn start() -> Self {
        Self::try_start("127.0.0.1:0".parse().unwrap()).expect("bind 127.0.0.1:0")
    }

    /// `coap://ADDR/PATH`.
    fn uri(&self, path: &str) -> String {
        format!("coap://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The server's answer to `req`, by path.
fn answer(req: &Message<'_>) -> MessageBuf {
    let path: Vec<&str> = req
        .options_of(OptionNumber::URI_PATH)
        .map(|v| std::str::from_utf8(v).unwrap_or("?"))
        .collect();
    let path = path.join("/");
    let ok = |payload: &[u8]| {
        let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
        m.set_payload(payload);
        m
    };
    match path.as_str() {
        "hello" => {
            let mut m = ok(b"hello world");
            m.add_option_uint(OptionNumber::CONTENT_FORMAT, 0);
            m
        }
        "binary" => ok(&[0, 1, 2, 0xff, b'\n', b'\r']),
        "echo" => {
            let mut text = format!(
                "type={}\ncode={}.{:02}\n",
                req.ty(),
                req.code().class(),
                req.code().detail()
            );
            for o in req.options() {
                let _ = writeln!(text, "opt={}:{}", o.number.0, to_hex(o.value));
            }
            let _ = writeln!(text, "payload={}", to_hex(req.payload()));
            ok(text.as_bytes())
        }
        "big" => {
            let big: Vec<u8> = (0..200u8).collect();
            let asked = req.block2().unwrap_or(Block::new(0, false, 2).unwrap());
            let szx = asked.szx().min(2);
            let start = (asked.offset()).min(big.len());
            let end = (start + (16 << szx)).min(big.len());
            let mut m = ok(&big[start..end]);
            let num = (start >> (szx + 4)) as u32;
            let block = Block::new(num, end < big.len(), szx).unwrap();
            m.add_option_uint(OptionNumber::BLOCK2, block.to_uint());
            m
        }
        ".well-known/core" | "custom/links" => {
            let doc = if path == "custom/links" {
                "</custom/a>;ct=50"
            } else {
                LINKS
            };
            let queries: Vec<&str> = req
                .options_of(OptionNumber::URI_QUERY)
                .map(|v| std::str::from_utf8(v).unwrap())
                .collect();
            let mut body = String::new();
            match queries.first() {
                Some(q) => {
                    let filter = Filter::parse(q).unwrap();
                    LinkFormat::parse(doc)
                        .unwrap()
                        .write_filtered(Some(&filter), &mut body)
                        .unwrap();
                }
                None => body.push_str(doc),
            }
            let mut m = ok(body.as_bytes());
            m.add_option_uint(OptionNumber::CONTENT_FORMAT, 40);
            m
        }
        "boom" => {
            let mut m = MessageBuf::new(MessageType::Ack, Code::INTERNAL_SERVER_ERROR);
            m.set_payload("it broke");
            m
        }
        _ => {
            let mut m = MessageBuf::new(MessageType::Ack, Code::NOT_FOUND);
            m.set_payload(format!("no such resource: {path}"));
            m
        }
    }
}

/// A port on which nothing listens (bound, then closed).
fn closed_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------
// Running the client

struct Run {
    status: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn stdout(&self) -> &str {
        std::str::from_utf8(&self.stdout).expect("stdout is UTF-8")
    }
}

fn collect(out: Output) -> Run {
    Run {
        status: out.status.code().expect("exited"),
        stdout: out.stdout,
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

fn spawn_with(mut cmd: Command, stdin: &[u8]) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    collect(child.wait_with_output().unwrap())
}

/// Runs `coap ARGS`.
fn coap(args: &[&str]) -> Run {
    coap_stdin(args, b"")
}

fn coap_stdin(args: &[&str], stdin: &[u8]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coap"));
    cmd.args(args);
    spawn_with(cmd, stdin)
}

/// The `/echo` lines of a run, checking it succeeded.
fn echo_lines(run: &Run) -> Vec<String> {
    assert_eq!(run.status, 0, "stderr: {}", run.stderr);
    run.stdout().lines().map(str::to_owned).collect()
}

fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("coap-cli-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

// ---------------------------------------------------------------------------
// Requests and their output

#[test]
fn get_prints_the_payload_exactly() {
    let server = Server::start();
    let run = coap(&["get", &server.uri("/hello")]);
    assert_eq!(
        (run.status, run.stdout(), run.stderr.as_str()),
        (0, "hello world", "")
    );
    let run = coap(&["get", &server.uri("/binary")]);
    assert_eq!(run.status, 0);
    assert_eq!(run.stdout, [0, 1, 2, 0xff, b'\n', b'\r']);
}

#[test]
fn get_sends_path_and_query_but_no_host_or_port_for_an_ip() {
    let server = Server::start();
    let lines = echo_lines(&coap(&["get", &server.uri("/echo?a=1&b")]));
    assert_eq!(
        lines,
        [
            "type=CON",
            "code=0.01",
            "opt=11:6563686f",
            "opt=15:613d31",
            "opt=15:62",
            "payload="
        ]
    );
}

#[test]
fn methods_and_payloads() {
    let server = Server::start();
    let uri = server.uri("/echo");
    let lines = echo_lines(&coap(&["post", &uri, "--payload", "hi"]));
    assert_eq!(lines[1], "code=0.02");
    assert_eq!(lines.last().unwrap(), "payload=6869");

    let file = temp_file("put.bin", b"\x00file\xff");
    let lines = echo_lines(&coap(&["put", &uri, "--file", file.to_str().unwrap()]));
    assert_eq!(lines[1], "code=0.03");
    assert_eq!(lines.last().unwrap(), "payload=0066696c65ff");

    let lines = echo_lines(&coap_stdin(&["put", &uri, "--file", "-"], b"from stdin"));
    assert_eq!(
        lines.last().unwrap(),
        &format!("payload={}", to_hex(b"from stdin"))
    );

    let lines = echo_lines(&coap(&["delete", &uri]));
    assert_eq!(lines[1], "code=0.04");
    assert_eq!(lines.last().unwrap(), "payload=");

    let lines = echo_lines(&coap(&[
        "fetch",
        &uri,
        "--payload",
        "q",
        "--content-format",
        "60",
    ]));
    assert_eq!(lines[1], "code=0.05");
    assert!(lines.contains(&"opt=12:3c".to_owned()), "{lines:?}");
}

#[test]
fn content_format_accept_and_headers() {
    let server = Server::start();
    let run = coap(&[
        "put",
        &server.uri("/echo"),
        "--payload",
        "{}",
        "--content-format",
        "application/json",
        "--accept",
        "text/plain",
        "--header",
        "65000=0x0102",
        "--header",
        "2048=300",
        "--header",
        "Uri-Query=5",
        "--header",
        "If-None-Match",
        "-O",
        "max-age=60",
        "--header",
        "65002=some text",
    ]);
    assert_eq!(
        echo_lines(&run),
        [
            "type=CON",
            "code=0.03",
            "opt=5:",                       // If-None-Match, empty
            "opt=11:6563686f",              // Uri-Path "echo"
            "opt=12:32",                    // Content-Format 50
            "opt=14:3c",                    // Max-Age 60 (by name, any case)
            "opt=15:35",                    // Uri-Query "5": text for a string option
            "opt=17:",                      // Accept 0: the empty uint
            "opt=2048:012c",                // a decimal: minimal uint
            "opt=65000:0102",               // 0x: hex bytes
            "opt=65002:736f6d652074657874", // text
            "payload=7b7d",
        ]
    );
}

#[test]
fn non_requests() {
    let server = Server::start();
    let lines = echo_lines(&coap(&["get", "--non", &server.uri("/echo")]));
    assert_eq!(lines[0], "type=NON");
    let run = coap(&["get", "--non", &server.uri("/hello")]);
    assert_eq!((run.status, run.stdout()), (0, "hello world"));
}

/// RFC 7959 §2.4: the Block2 blocks are fetched and printed as one body;
/// `--block-size` asks for smaller blocks; no progress bar off a terminal.
#[test]
fn block2_response_is_reassembled() {
    let server = Server::start();
    let want: Vec<u8> = (0..200u8).collect();
    let run = coap(&["get", &server.uri("/big")]);
    assert_eq!(
        (run.status, &run.stdout, run.stderr.as_str()),
        (0, &want, "")
    );
    let run = coap(&["get", "-v", "--block-size", "16", &server.uri("/big")]);
    assert_eq!((run.status, &run.stdout), (0, &want));
    assert_eq!(run.stderr.matches("> ").count(), 13, "{}", run.stderr);
    assert!(run.stderr.contains("Block2:12/0/16"), "{}", run.stderr);
}

/// RFC 7959 §2.5: a payload larger than the block size goes in Block1
/// blocks. `/echo` is a stateless server (its 2.05 to each block, §2.3):
/// the last block's echo is the response.
#[test]
fn block1_upload_goes_in_blocks() {
    let server = Server::start();
    let big = "x".repeat(2000);
    let lines = echo_lines(&coap(&[
        "put",
        &server.uri("/echo"),
        "--block-size",
        "256",
        "--payload",
        &big,
    ]));
    // Block1 NUM 7, M 0, SZX 4: 0x74; the last 208 bytes.
    assert!(lines.contains(&"opt=27:74".to_owned()), "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        &format!("payload={}", "78".repeat(208))
    );
}

#[test]
fn host_names_resolve_and_go_into_uri_host() {
    let Some(addr) = ("localhost", 0u16)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    else {
        eprintln!("skipped: localhost does not resolve");
        return;
    };
    let Some(server) = Server::try_start(addr) else {
        eprintln!("skipped: cannot bind {addr}");
        return;
    };
    let uri = format!("coap://LocalHost:{}/echo", server.addr.port());
    let lines = echo_lines(&coap(&["get", &uri]));
    assert_eq!(
        lines[2],
        format!("opt=3:{}", to_hex(b"localhost")),
        "{lines:?}"
    );
}

#[test]
fn ipv6_literal() {
    let Some(server) = Server::try_start("[::1]:0".parse().unwrap()) else {
        eprintln!("skipped: no IPv6 loopback");
        return;
    };
    let uri = format!("coap://[::1]:{}/hello", server.addr.port());
    let run = coap(&["get", &uri]);
    assert_eq!(
        (run.status, run.stdout()),
        (0, "hello world"),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------
// Exit statuses

#[test]
fn error_responses_exit_1_with_code_and_diagnostic_on_stderr() {
    let server = Server::start();
    let run = coap(&["get", &server.uri("/missing")]);
    assert_eq!(run.status, 1);
    assert!(run.stdout.is_empty());
    assert_eq!(
        run.stderr,
        "coap get: 4.04 Not Found: no such resource: missing\n"
    );
    let run = coap(&["post", &server.uri("/boom")]);
    assert_eq!(run.status, 1);
    assert_eq!(
        run.stderr,
        "coap post: 5.00 Internal Server Error: it broke\n"
    );
}

#[test]
fn usage_errors_exit_2() {
    let server = Server::start();
    let ok = server.uri("/hello");
    let missing = temp_file("x", b"").with_file_name("does-not-exist");
    let cases: &[(&[&str], &str)] = &[
        (&["get", "coaps://127.0.0.1/x"], "unsupported scheme"),
        (&["get", "coap+tcp://127.0.0.1/x"], "unsupported scheme"),
        (&["get", "http://127.0.0.1/x"], "invalid URI"),
        (&["get", "/relative"], "invalid URI"),
        (&["get", "coap://h/a#frag"], "invalid URI"),
        (
            &["get", "coap://nonexistent.invalid/"],
            "cannot resolve host",
        ),
        (
            &["get", &ok, "--header", "Bogus=1"],
            "registered option name",
        ),
        (&["get", &ok, "--header", "12=0xabc"], "hex"),
        (&["get", &ok, "--content-format", "text/nope"], "media type"),
        (&["get", &ok, "--accept", "70000"], "media type"),
        (&["get", &ok, "--timeout", "0"], "seconds"),
        (
            &["get", &ok, "--payload", "a", "--file", "b"],
            "cannot be used with",
        ),
        (
            &["put", &ok, "--file", missing.to_str().unwrap()],
            "reading",
        ),
        (&["ping", "coaps://127.0.0.1/"], "unsupported scheme"),
        (&["get", &ok, "--block-size", "100"], "not a block size"),
        (&["get", &ok, "--block-size", "2048"], "not a block size"),
        (&["discover", "bogus"], "invalid URI"),
        (&["get"], "required"),
    ];
    for (args, want) in cases {
        let run = coap(args);
        assert_eq!(run.status, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(want),
            "{args:?}: {:?} lacks {want:?}",
            run.stderr
        );
    }
}

#[test]
fn timeout_exits_3() {
    let port = closed_port();
    let started = Instant::now();
    let run = coap(&[
        "get",
        "--timeout",
        "1",
        &format!("coap://127.0.0.1:{port}/x"),
    ]);
    let took = started.elapsed();
    assert_eq!(run.status, 3, "{}", run.stderr);
    assert!(run.stderr.contains("no response"), "{}", run.stderr);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let run = coap(&[
        "get",
        "--non",
        "--timeout",
        "0.5",
        &format!("coap://127.0.0.1:{port}/x"),
    ]);
    assert_eq!(run.status, 3, "{}", run.stderr);
}

#[test]
fn con_is_retransmitted_within_the_timeout() {
    // Bound but silent: the request is never answered.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uri = format!("coap://{}/x", silent.local_addr().unwrap());
    let run = coap(&["-v", "get", "--timeout", "3.5", &uri]);
    assert_eq!(run.status, 3);
    // ACK_TIMEOUT 2 s × ACK_RANDOM_FACTOR 1..1.5: one retransmission by 3 s.
    let sent: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("> ")).collect();
    assert_eq!(sent.len(), 2, "{}", run.stderr);
    assert_eq!(sent[0], sent[1], "a retransmission is the same datagram");
}

#[test]
fn reset_exits_3() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let rst = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        let req = Message::parse(&buf[..n]).unwrap();
        let mid = req.message_id().to_be_bytes();
        sock.send_to(&[0x70, 0x00, mid[0], mid[1]], from).unwrap();
    });
    let run = coap(&["get", "--timeout", "5", &format!("coap://{addr}/x")]);
    rst.join().unwrap();
    assert_eq!(run.status, 3, "{}", run.stderr);
    assert!(run.stderr.contains("Reset"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------
// -v, discover, ping

#[test]
fn verbose_dumps_every_datagram() {
    let server = Server::start();
    let run = coap(&["-v", "get", &server.uri("/hello")]);
    assert_eq!((run.status, run.stdout()), (0, "hello world"));
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    let out = format!("> {} CON GET mid=0x", server.addr);
    assert!(lines[0].starts_with(&out), "{}", lines[0]);
    assert!(lines[0].ends_with(" Uri-Path:hello"), "{}", lines[0]);
    let tok = lines[0]
        .split(" tok=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let back = format!("< {} ACK 2.05 mid=", server.addr);
    assert!(lines[1].starts_with(&back), "{}", lines[1]);
    assert!(
        lines[1].ends_with(&format!(" tok={tok} Content-Format:0 payload=11B")),
        "{}",
        lines[1]
    );
    // -vv adds the hex of each datagram.
    let run = coap(&["-vv", "get", &server.uri("/hello")]);
    assert_eq!(run.stderr.lines().count(), 4, "{}", run.stderr);
    assert!(run.stderr.lines().nth(1).unwrap().starts_with("  4401"));
}

#[test]
fn discover_pretty_prints_links() {
    let server = Server::start();
    let run = coap(&["discover", &server.uri("")]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout(),
        "</hello>  rt=\"greeting\" ct=0\n\
         </echo>   if=\"debug\"\n\
         </obs>    obs rt=\"observe\"\n\
         </big>\n"
    );
    // A query filters /.well-known/core; a path is used as it is.
    let run = coap(&["discover", &server.uri("/?rt=observe")]);
    assert_eq!(
        (run.status, run.stdout()),
        (0, "</obs>  obs rt=\"observe\"\n")
    );
    let run = coap(&["discover", "--non", &server.uri("/custom/links")]);
    assert_eq!((run.status, run.stdout()), (0, "</custom/a>  ct=50\n"));
    let run = coap(&["discover", &server.uri("/hello")]);
    assert_eq!(run.status, 1, "not link-format");
    assert_eq!(run.stdout(), "hello world");
    let run = coap(&["discover", &server.uri("/missing")]);
    assert_eq!(run.status, 1);
}

#[test]
fn ping() {
    let server = Server::start();
    let run = coap(&["ping", &server.uri("/")]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let line = run.stdout();
    let prefix = format!("pong from {} in ", server.addr);
    assert!(
        line.starts_with(&prefix) && line.ends_with(" ms\n"),
        "{line:?}"
    );
    let ms: f64 = line[prefix.len()..line.len() - 4].parse().unwrap();
    assert!((0.0..5000.0).contains(&ms));

    let port = closed_port();
    let run = coap(&[
        "ping",
        "--timeout",
        "0.5",
        &format!("coap://127.0.0.1:{port}"),
    ]);
    assert_eq!(run.status, 3);
    assert!(run.stderr.contains("no pong"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------
// interop/coap-adapter.sh

fn adapter(args: &[&str]) -> Run {
    let mut cmd = Command::new("bash");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/interop/coap-adapter.sh"
    ))
    .args(args)
    .env("COAP_BIN", env!("CARGO_BIN_EXE_coap"));
    spawn_with(cmd, b"")
}

#[test]
fn adapter_maps_the_check_client_verbs() {
    let server = Server::start();
    let run = adapter(&["get", &server.uri("/hello")]);
    assert_eq!((run.status, run.stdout()), (0, "hello world"));

    let file = temp_file("adapter.txt", b"adapter payload");
    let lines = echo_lines(&adapter(&[
        "post",
        &server.uri("/echo"),
        file.to_str().unwrap(),
    ]));
    assert_eq!(lines[1], "code=0.02");
    assert!(
        lines.contains(&"opt=12:".to_owned()),
        "text/plain: {lines:?}"
    );
    assert_eq!(
        lines.last().unwrap(),
        &format!("payload={}", to_hex(b"adapter payload"))
    );
    let lines = echo_lines(&adapter(&[
        "put",
        &server.uri("/echo"),
        file.to_str().unwrap(),
    ]));
    assert_eq!(lines[1], "code=0.03");
    let lines = echo_lines(&adapter(&["delete", &server.uri("/echo")]));
    assert_eq!(lines[1], "code=0.04");

    // Observe (issue 6) is one GET for now, printed as one line.
    let run = adapter(&["observe", &server.uri("/hello"), "2"]);
    assert_eq!((run.status, run.stdout()), (0, "hello world\n"));

    let run = adapter(&["get", &server.uri("/missing")]);
    assert_ne!(run.status, 0);
    let run = adapter(&["observe", &server.uri("/missing"), "2"]);
    assert_ne!(run.status, 0);
    assert!(run.stdout.is_empty());
    let run = adapter(&["frobnicate", &server.uri("/hello")]);
    assert_eq!(run.status, 2);
}
