//! The `swarmmq` binary: runs a node (`node`), talks to one (`produce`, `consume`,
//! `topic`, `group`, `keys`, `auth`, `cluster`), measures one (`bench`), runs a local
//! development cluster (`dev`), tests one under faults (`chaos`), and makes development TLS certificates (`certs`). Every failure ends as one `error: ...` line on stderr and a
//! non-zero exit status.

mod bench;
mod cli;
mod cmd_auth;
mod cmd_certs;
mod cmd_chaos;
mod cmd_cluster;
mod cmd_consume;
mod cmd_dev;
mod cmd_group;
mod cmd_keys;
mod cmd_node;
mod cmd_produce;
mod cmd_topic;
mod node_cluster;
mod output;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Keeps large buffers (read batches, frames) in the heap after they are freed instead
/// of returning them to the kernel: on VMs that back guest memory lazily, every fresh page
/// costs a hypervisor fault on first touch, and a broker allocates and frees megabytes a
/// millisecond. Measured here: consume 208k -> 464k msg/s (docs/benchmarks.md). Memory
/// stays bounded by the node's own limits; the trim threshold caps what is kept idle.
fn tune_allocator() {
    const MMAP_THRESHOLD: i32 = 64 * 1024 * 1024;
    const TRIM_THRESHOLD: i32 = 256 * 1024 * 1024;
    const TOP_PAD: i32 = 64 * 1024 * 1024;
    // SAFETY: mallopt only changes glibc allocator parameters; it is called once, before
    // any other thread exists, with documented parameter constants.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_TOP_PAD, TOP_PAD);
    }
}

fn main() {
    tune_allocator();
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
            Command::Keys(args) => cmd_keys::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Auth(args) => cmd_auth::run(args),
            Command::Certs(args) => cmd_certs::run(args),
            Command::Cluster(args) => cmd_cluster::run(args).await,
            Command::Dev(args) => cmd_dev::run(args).await,
            Command::Chaos(args) => cmd_chaos::run(args).await,
        }
    });
    // Background tasks (a client's reader, say) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    if let Err(e) = result {
        eprintln!("error: {}", output::one_line(&e));
        std::process::exit(1);
    }
}
