//! `callrec-bench`: the media-path benchmark (see `callrec::bench`).
//! `run` is what `scripts/bench.sh` calls; `target`, `floor` are the
//! receiver processes it starts; `loadgen` sends streams to any callrec.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use callrec::bench::{loadgen::Streams, run, target};

#[derive(Debug, Parser)]
#[command(name = "callrec-bench", about = "callrec's media-path benchmark")]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// N streams into callrec's media task, then into the floor receiver;
    /// prints the result as JSON, then as a BENCHMARKS.md table row.
    Run {
        #[arg(long)]
        streams: u32,
        #[arg(long, default_value_t = 20)]
        seconds: u32,
        /// Source ports base-port .. base-port + streams.
        #[arg(long, default_value_t = 21_000)]
        base_port: u16,
    },
    /// callrec's media task with one recording per stream (bench mode).
    Target {
        #[arg(long)]
        streams: u32,
        #[arg(long)]
        base_port: u16,
    },
    /// The least a receiver does: a timer drain with recvmmsg.
    Floor,
    /// Sends N paced RTP streams to ADDR (callrec's media port, say).
    Loadgen {
        #[arg(long)]
        streams: u32,
        #[arg(long, default_value_t = 20)]
        seconds: u32,
        #[arg(long, default_value_t = 21_000)]
        base_port: u16,
        #[arg(long)]
        to: SocketAddr,
    },
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        BenchCommand::Run { streams, seconds, base_port } => run::run(streams, seconds, base_port).and_then(|result| {
            println!("{}", serde_json::to_string(&result)?);
            println!("{}", result.markdown_row());
            Ok(())
        }),
        BenchCommand::Target { streams, base_port } => target::media(streams, base_port),
        BenchCommand::Floor => target::floor(),
        BenchCommand::Loadgen { streams, seconds, base_port, to } => {
            Streams::bind(streams, base_port).map_err(Into::into).and_then(|senders| {
                println!("{}", serde_json::to_string(&senders.send(to, seconds))?);
                Ok(())
            })
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("callrec-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
