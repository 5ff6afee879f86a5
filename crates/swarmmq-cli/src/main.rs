//! The `swarmmq` binary: runs a node (`node`), talks to one (`produce`, `consume`,
//! `topic`), and measures one (`bench`). Every failure ends as one `error: ...` line on
//! stderr and a non-zero exit status.

mod bench;
mod cli;
mod cmd_consume;
mod cmd_group;
mod cmd_node;
mod cmd_produce;
mod cmd_topic;
mod output;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => cmd_node::run(args).await,
            Command::Produce(args) => cmd_produce::run(args).await,
            Command::Consume(args) => cmd_consume::run(args).await,
            Command::Topic(args) => cmd_topic::run(args).await,
            Command::Group(args) => cmd_group::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    // Background tasks (a client's reader, say) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    if let Err(e) = result {
        eprintln!("error: {}", output::one_line(&e));
        std::process::exit(1);
    }
}
