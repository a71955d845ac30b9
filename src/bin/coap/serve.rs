//! `coap serve`: the demo server implementing the interop resource contract
//! (`../shared/interop/README.md`), a thin application on top of the
//! resource layer ([`coap_proto::server`]) and [`UdpEndpoint`]: routing,
//! 4.04/4.05/4.06, `/.well-known/core`, Block1 reassembly and Block2
//! slicing all come from the library; this file only has the resources.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use coap_proto::endpoint::{Config, Endpoint, Event, ResponseHandle};
use coap_proto::server::{
    ETag, Reply, Request, Resource, ResourceId, ResourceState, Server, ServerConfig,
};
use coap_proto::udp::{Direction, UdpEndpoint};
use coap_proto::{Code, ContentFormat, Instant, Message, MessageBuf, MessageType, OptionNumber};

use crate::{CmdResult, Failure, Global};

/// Arguments of `coap serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (IPv4 or IPv6).
    #[arg(long, default_value = "127.0.0.1:5683")]
    bind: SocketAddr,
    /// Seconds between changes of /obs.
    #[arg(long, default_value_t = 2)]
    obs_interval: u64,
    /// Delay before the separate response of /separate, in milliseconds.
    #[arg(long, default_value_t = 500)]
    separate_delay_ms: u64,
    /// Stop after this many seconds (for tests and CI); runs forever if absent.
    #[arg(long)]
    lifetime: Option<u64>,
}

/// The application state every handler sees.
struct App {
    large: Vec<u8>,
    large_update: Vec<u8>,
    /// /validate (ETSI TD_COAP_CORE_21/22): body and version (its ETag).
    validate: (Vec<u8>, u64),
    /// /create1 (ETSI TD_COAP_CORE_23): absent until a PUT creates it.
    create1: Option<Vec<u8>>,
    /// Requests of /separate waiting for their answer, and when it is due.
    later: Vec<(Instant, ResponseHandle)>,
    /// /obs (RFC 7641): its value, bumped every --obs-interval seconds (at
    /// `obs_next`), when its observers are notified.
    obs_value: u64,
    obs_next: Instant,
    separate_delay: Duration,
}

fn large_body() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..40 {
        let _ = writeln!(
            s,
            "{i:02}: coap-proto /large resource, served block-wise (RFC 7959)"
        );
    }
    s.into_bytes()
}

const TEXT: ContentFormat = ContentFormat::TEXT_PLAIN;

fn text(body: impl Into<Vec<u8>>) -> Reply {
    Reply::content(TEXT, body)
}

fn created(location: &str) -> Reply {
    let mut m = MessageBuf::new(MessageType::Ack, Code::CREATED);
    m.add_option(OptionNumber::LOCATION_PATH, location);
    Reply::Now(m)
}

/// Every resource of the contract, plus the ETSI link and validation ones.
/// Returns the id of /obs, whose observers the serve loop notifies.
fn resources(
    server: &mut Server<SocketAddr, App>,
) -> Result<ResourceId, coap_proto::server::ServerError> {
    server.add(
        Resource::new("/test")
            .rt("test")
            .interface("core.rw")
            .format(TEXT)
            .get(|_, _| text("Hello from coap-proto: this is /test"))
            .put(|_, _| Reply::status(Code::CHANGED))
            .post(|_, _| created("test"))
            .delete(|_, _| Reply::status(Code::DELETED)),
    )?;
    server.add(Resource::new("/separate").rt("separate").format(TEXT).get(
        |app: &mut App, req| {
            // RFC 7252 §5.2.2: acknowledge now, answer later (run_due).
            app.later.push((req.now + app.separate_delay, req.handle));
            Reply::Later
        },
    ))?;
    server.add(
        Resource::new("/large")
            .rt("block")
            .size(large_body().len() as u64)
            .format(TEXT)
            .get(|app: &mut App, _| text(app.large.clone())),
    )?;
    server.add(
        Resource::new("/large-update")
            .rt("block")
            .format(TEXT)
            .get(|app: &mut App, _| text(app.large_update.clone()))
            .put(|app: &mut App, req| {
                app.large_update = req.body.to_vec();
                Reply::status(Code::CHANGED)
            }),
    )?;
    server.add(
        Resource::new("/large-create")
            .rt("block")
            .post(|_, _| created("large-create")),
    )?;
    // Observe (RFC 7641): the serve loop changes the value every
    // --obs-interval seconds and notifies the observers.
    let obs = server.add(
        Resource::new("/obs")
            .rt("observe")
            .observable()
            .format(TEXT)
            .get(|app: &mut App, _| text(format!("observable value {}", app.obs_value))),
    )?;
    server.add(Resource::new("/query").rt("query").format(TEXT).get(
        |_, req: &Request<'_, SocketAddr>| {
            let mut body = Vec::new();
            for q in req.message.options_of(OptionNumber::URI_QUERY) {
                body.extend_from_slice(q);
                body.push(b'\n');
            }
            text(body)
        },
    ))?;
    server.add(
        Resource::new("/multi-format")
            .rt("multi-format")
            .format(TEXT)
            .format(ContentFormat::XML)
            .format(ContentFormat::JSON)
            .get(|_, req| match req.format {
                Some(ContentFormat::XML) => Reply::content(
                    ContentFormat::XML,
                    "<temperature unit=\"C\">22.3</temperature>",
                ),
                Some(ContentFormat::JSON) => Reply::content(
                    ContentFormat::JSON,
                    "{\"temperature\": 22.3, \"unit\": \"C\"}",
                ),
                _ => text("temperature: 22.3 C"),
            }),
    )?;
    server.add(
        Resource::new("/seg1/seg2/seg3")
            .format(TEXT)
            .get(|_, _| text("seg1/seg2/seg3")),
    )?;
    etsi_resources(server)?;
    Ok(obs)
}

/// The ETSI plugtest resources: the links of TD_COAP_LINK_02..08 (also in
/// the interop contract), the link hierarchy (TD_COAP_LINK_09) and the
/// validation ones (TD_COAP_CORE_21..23).
fn etsi_resources(
    server: &mut Server<SocketAddr, App>,
) -> Result<(), coap_proto::server::ServerError> {
    for (path, rt, iface) in [
        ("/link1", "Type1 Type2", "If1"),
        ("/link2", "Type2 Type3", "If2"),
        ("/link3", "Type1 Type3", "foo"),
    ] {
        let name = path.trim_start_matches('/');
        server.add(
            Resource::new(path)
                .rt(rt)
                .interface(iface)
                .get(move |_, _| text(name)),
        )?;
    }
    // ETSI TD_COAP_LINK_09: link descriptions arranged hierarchically.
    server.add(Resource::new("/path").index())?;
    for sub in ["sub1", "sub2", "sub3"] {
        server.add(
            Resource::new(&format!("/path/{sub}"))
                .unlisted()
                .format(TEXT)
                .get(move |_, _| text(sub)),
        )?;
    }
    // ETSI TD_COAP_CORE_21/22: ETag, If-Match, 2.03 Valid.
    server.add(
        Resource::new("/validate")
            .rt("validate")
            .format(TEXT)
            .state(|app: &App| ResourceState::Present(Some(ETag::from_u64(app.validate.1))))
            .get(|app: &mut App, _| {
                let Reply::Now(mut m) = text(app.validate.0.clone()) else {
                    return Reply::status(Code::INTERNAL_SERVER_ERROR);
                };
                m.add_option(
                    OptionNumber::ETAG,
                    ETag::from_u64(app.validate.1).as_bytes(),
                );
                Reply::Now(m)
            })
            .put(|app: &mut App, req| {
                app.validate = (req.body.to_vec(), app.validate.1.wrapping_add(1));
                let mut m = MessageBuf::new(MessageType::Ack, Code::CHANGED);
                m.add_option(
                    OptionNumber::ETAG,
                    ETag::from_u64(app.validate.1).as_bytes(),
                );
                Reply::Now(m)
            }),
    )?;
    // ETSI TD_COAP_CORE_23: PUT with If-None-Match creates only once.
    server.add(
        Resource::new("/create1")
            .format(TEXT)
            .state(|app: &App| {
                if app.create1.is_some() {
                    ResourceState::Present(None)
                } else {
                    ResourceState::Absent
                }
            })
            .get(|app: &mut App, _| match &app.create1 {
                Some(body) => text(body.clone()),
                None => Reply::status(Code::NOT_FOUND),
            })
            .put(|app: &mut App, req| {
                let existed = app.create1.replace(req.body.to_vec()).is_some();
                Reply::status(if existed {
                    Code::CHANGED
                } else {
                    Code::CREATED
                })
            })
            .delete(|app: &mut App, _| {
                app.create1 = None;
                Reply::status(Code::DELETED)
            }),
    )?;
    Ok(())
}

impl App {
    /// Answers the /separate requests whose delay is over.
    fn run_due(
        &mut self,
        server: &mut Server<SocketAddr, App>,
        ep: &mut Endpoint<SocketAddr>,
        now: Instant,
        verbose: u8,
    ) {
        let (due, keep): (Vec<_>, Vec<_>) = self.later.drain(..).partition(|(at, _)| *at <= now);
        self.later = keep;
        for (_, handle) in due {
            let Reply::Now(m) = text("separate response from /separate") else {
                continue;
            };
            if let Err(e) = server.respond(ep, now, handle, m) {
                log(verbose, 1, format_args!("cannot answer {handle}: {e}"));
            }
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.later.iter().map(|(at, _)| *at).min()
    }
}

fn log(verbose: u8, level: u8, args: std::fmt::Arguments<'_>) {
    if verbose >= level {
        let _ = writeln!(std::io::stderr(), "coap serve: {args}");
    }
}

/// The demo resources with their state and timers (/separate answers,
/// /obs changes), shared by `coap serve` and `coap register`.
pub(crate) struct Demo {
    server: Server<SocketAddr, App>,
    app: App,
    obs: ResourceId,
    obs_interval: Duration,
    verbose: u8,
}

impl Demo {
    /// The resource set, its first /obs change due `obs_interval` seconds
    /// after `now`.
    pub(crate) fn new(
        now: Instant,
        obs_interval: u64,
        separate_delay_ms: u64,
        verbose: u8,
    ) -> Result<Self, Failure> {
        let mut server: Server<SocketAddr, App> = Server::new(ServerConfig::default());
        let obs =
            resources(&mut server).map_err(|e| Failure::data(format!("resource setup: {e}")))?;
        let obs_interval = Duration::from_secs(obs_interval.max(1));
        let app = App {
            large: large_body(),
            large_update: large_body(),
            validate: (b"initial /validate content".to_vec(), 1),
            create1: None,
            later: Vec::new(),
            obs_value: 0,
            obs_next: now + obs_interval,
            separate_delay: Duration::from_millis(separate_delay_ms),
        };
        Ok(Self {
            server,
            app,
            obs,
            obs_interval,
            verbose,
        })
    }

    /// The links of the resources (what /.well-known/core serves).
    pub(crate) fn well_known_core(&self) -> String {
        self.server.well_known_core()
    }

    /// Runs what is due at `now`; returns how long the loop may wait.
    pub(crate) fn tick(&mut self, ep: &mut Endpoint<SocketAddr>, now: Instant) -> Duration {
        let verbose = self.verbose;
        self.app.run_due(&mut self.server, ep, now, verbose);
        if now >= self.app.obs_next {
            self.app.obs_value += 1;
            self.app.obs_next = now + self.obs_interval;
            let n = self.server.notify_changed(ep, now, self.obs, &mut self.app);
            log(
                verbose,
                1,
                format_args!("/obs changed: {n} notification(s)"),
            );
        }
        self.server.handle_timeout(now);
        [
            self.app.next_due(),
            self.server.poll_timeout(),
            Some(self.app.obs_next),
        ]
        .into_iter()
        .flatten()
        .map(|at| at - now)
        .fold(Duration::from_secs(1), Duration::min)
    }

    /// Serves one endpoint event.
    pub(crate) fn handle_event(
        &mut self,
        ep: &mut Endpoint<SocketAddr>,
        now: Instant,
        event: Event<SocketAddr>,
    ) {
        if let Some(Event::ResponseFailed(h)) =
            self.server.handle_event(ep, now, event, &mut self.app)
        {
            log(
                self.verbose,
                1,
                format_args!("separate response {h} was not acknowledged"),
            );
        }
    }
}

pub(crate) fn serve(global: Global, args: &ServeArgs) -> CmdResult {
    let mut ep = UdpEndpoint::bind(args.bind, Config::default())
        .map_err(|e| Failure::data(format!("cannot bind {}: {e}", args.bind)))?;
    let local = ep.local_addr().map_err(|e| Failure::data(e.to_string()))?;
    let _ = writeln!(std::io::stderr(), "coap serve: listening on coap://{local}");
    let verbose = global.verbose;
    // No trace at all when quiet: parsing every datagram twice more for a
    // log that is off is wasted work on the hot path.
    if verbose >= 1 {
        set_trace(&mut ep, verbose, "serve");
    }
    let mut demo = Demo::new(ep.now(), args.obs_interval, args.separate_delay_ms, verbose)?;
    let started = StdInstant::now();
    loop {
        if let Some(l) = args.lifetime
            && started.elapsed() >= Duration::from_secs(l)
        {
            return Ok(());
        }
        let now = ep.now();
        let wait = demo.tick(ep.endpoint(), now);
        ep.turn(Some(wait), |e, now, event| demo.handle_event(e, now, event))
            .map_err(|e| Failure::data(format!("socket error: {e}")))?;
    }
}

/// Logs every datagram on stderr (`-v`), malformed ones with `-vv`.
pub(crate) fn set_trace(ep: &mut UdpEndpoint, verbose: u8, command: &'static str) {
    ep.set_trace(move |dir, peer, bytes| match (dir, Message::parse(bytes)) {
        (Direction::In, Err(e)) if verbose >= 2 => {
            let _ = writeln!(
                std::io::stderr(),
                "coap {command}: debug: malformed datagram from {peer}: {e}"
            );
        }
        (_, Ok(m)) if verbose >= 1 => {
            let arrow = if dir == Direction::In { '<' } else { '>' };
            let _ = writeln!(std::io::stderr(), "{arrow} {peer} {m}");
        }
        _ => {}
    });
}
