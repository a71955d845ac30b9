//! The `coap` command-line tool.
//!
//! One module per command group: `codec_cmd` holds the offline message
//! codec commands (`decode`, `encode`). Network commands (requests,
//! discovery, ping, serve, ...) get modules of their own and one variant
//! each in [`Command`]; [`main`] only parses the command line and dispatches.
//!
//! Exit status, for every command: 0 on success, 1 when the input data is
//! invalid (a malformed message, bad JSON, an unencodable message), 2 on a
//! usage error (clap's own exit code for a bad command line).

mod codec_cmd;
mod hex;
mod input;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A CoAP (RFC 7252) command-line tool built on coap-proto.
#[derive(Debug, Parser)]
#[command(name = "coap", version, propagate_version = true)]
#[command(after_help = "Exit status: 0 success, 1 invalid input data, 2 usage error.")]
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
}

/// Options shared by every subcommand.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Global {
    /// How many times `-v` was given.
    pub(crate) verbose: u8,
}

/// A non-zero exit status. Usage errors (exit status 2) are reported by
/// clap before a command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Exit status 1: the input data is invalid.
    InvalidData = 1,
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(message) = failure.message {
                let _ = writeln!(std::io::stderr(), "coap {name}: {message}");
            }
            ExitCode::from(failure.status as u8)
        }
    }
}
