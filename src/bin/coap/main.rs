//! The `coap` command-line tool.
//!
//! One module per command group: `codec_cmd` holds the offline message
//! codec commands (`decode`, `encode`). Network commands (requests,
//! discovery, ping, serve, ...) get modules of their own and one variant
//! each in [`Command`]; [`main`] only parses the command line and dispatches.
//!
//! Exit status, for every command: 0 on success, 1 when the input data is
//! invalid (a malformed message, bad JSON, an unencodable message) or the
//! server answered with an error (4.xx/5.xx), 2 on a usage error (clap's own
//! exit code for a bad command line, also used for a bad URI), 3 when no
//! answer came (timeout, Reset, network error).

mod client_cmd;
mod codec_cmd;
mod hex;
mod input;
mod load;
mod register;
mod serve;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use coap_proto::Code;

/// A CoAP (RFC 7252) command-line tool built on coap-proto.
#[derive(Debug, Parser)]
#[command(name = "coap", version, propagate_version = true)]
#[command(
    after_help = "Exit status: 0 success (a 2.xx response), 1 invalid input data or an error \
                  response (4.xx/5.xx), 2 usage error, 3 no answer (timeout or Reset)."
)]
struct Cli {
    /// Print more detail on stderr (may be repeated).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

/// The subcommands. Add new command groups here, one module each.
#[derive(Debug, Subcommand)]
enum Command {
    /// Decode a CoAP message from hex and print it as one line of JSON.
    #[command(long_about = codec_cmd::decode_about())]
    Decode(codec_cmd::DecodeArgs),
    /// Encode a CoAP message from JSON and print it as one line of hex.
    #[command(long_about = codec_cmd::ENCODE_ABOUT)]
    Encode(codec_cmd::EncodeArgs),
    /// GET a resource; print the response payload on stdout.
    Get(client_cmd::RequestArgs),
    /// POST to a resource; print the response payload on stdout.
    Post(client_cmd::RequestArgs),
    /// PUT a resource; print the response payload on stdout.
    Put(client_cmd::RequestArgs),
    /// DELETE a resource; print the response payload on stdout.
    Delete(client_cmd::RequestArgs),
    /// FETCH a resource (RFC 8132); print the response payload on stdout.
    Fetch(client_cmd::RequestArgs),
    /// List a server's resources (/.well-known/core), one link per line.
    Discover(client_cmd::DiscoverArgs),
    /// Send a CoAP ping (an empty CON) and wait for the Reset.
    Ping(client_cmd::PingArgs),
    /// Run the demo server (the interop resource contract) until stopped.
    Serve(serve::ServeArgs),
    /// Register the demo resources with a Resource Directory (RFC 9176) and serve them.
    Register(register::RegisterArgs),
    /// Load-test a server: keep N GET requests in flight, print requests/s and latency.
    #[command(long_about = load::LOAD_ABOUT)]
    Load(load::LoadArgs),
}

/// Options shared by every subcommand.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Global {
    /// How many times `-v` was given.
    pub(crate) verbose: u8,
}

/// A non-zero exit status. Most usage errors (exit status 2) are reported
/// by clap before a command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Exit status 1: the input data is invalid.
    InvalidData,
    /// Exit status 1: the server answered, but not with 2.xx.
    ErrorResponse,
    /// Exit status 2: a usage error that clap cannot see (a URI whose host
    /// does not resolve, an unreadable --file, ...).
    Usage,
    /// Exit status 3: no answer (timeout, Reset, network error).
    NoAnswer,
}

impl Status {
    /// The process exit status.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Self::InvalidData | Self::ErrorResponse => 1,
            Self::Usage => 2,
            Self::NoAnswer => 3,
        }
    }
}

/// Why a command failed: its exit status and, if not already reported on
/// stdout, a message for stderr.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: Status,
    pub(crate) message: Option<String>,
}

impl Failure {
    /// Invalid input data, explained on stderr.
    pub(crate) fn data(message: impl Into<String>) -> Self {
        Self {
            status: Status::InvalidData,
            message: Some(message.into()),
        }
    }

    /// A failure of any kind, explained on stderr.
    pub(crate) fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: Some(message.into()),
        }
    }

    /// A usage error, explained on stderr.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(Status::Usage, message)
    }

    /// A failure that the command already reported (on stdout).
    pub(crate) fn reported(status: Status) -> Self {
        Self {
            status,
            message: None,
        }
    }
}

/// What every command returns.
pub(crate) type CmdResult = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let global = Global {
        verbose: cli.verbose,
    };
    let (name, result) = match &cli.command {
        Command::Decode(args) => ("decode", codec_cmd::decode(global, args)),
        Command::Encode(args) => ("encode", codec_cmd::encode(global, args)),
        Command::Get(args) => ("get", client_cmd::request(global, Code::GET, args)),
        Command::Post(args) => ("post", client_cmd::request(global, Code::POST, args)),
        Command::Put(args) => ("put", client_cmd::request(global, Code::PUT, args)),
        Command::Delete(args) => ("delete", client_cmd::request(global, Code::DELETE, args)),
        Command::Fetch(args) => ("fetch", client_cmd::request(global, Code::FETCH, args)),
        Command::Discover(args) => ("discover", client_cmd::discover(global, args)),
        Command::Ping(args) => ("ping", client_cmd::ping(global, args)),
        Command::Serve(args) => ("serve", serve::serve(global, args)),
        Command::Load(args) => ("load", load::load(global, args)),
        Command::Register(args) => ("register", register::register(global, args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(message) = failure.message {
                let _ = writeln!(std::io::stderr(), "coap {name}: {message}");
            }
            ExitCode::from(failure.status.exit_code())
        }
    }
}
