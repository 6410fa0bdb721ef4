// Propose judges on one thread and frees on another: mimalloc frees across threads without the
// lock contention of the system allocator's arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(crmgate::cli::main());
}
