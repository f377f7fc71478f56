fn main() {
    std::process::exit(ocwrap::run());
}
