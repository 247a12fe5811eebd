use std::process::ExitCode;

use clap::Parser;

/// glibc's malloc gives each thread that allocates an arena of its own and the blocking pool's
/// threads come and go, so a burst of writes left ~30 MiB the process no longer used (and cache
/// entries filled on those threads pinned their arenas). jemalloc returns such memory and is
/// the same in the static (musl) build.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = connect_appliance::cli::Cli::parse();
    connect_appliance::cli::run(cli)
}
