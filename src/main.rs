fn main() {
    std::process::exit(crmgate::cli::main());
}
