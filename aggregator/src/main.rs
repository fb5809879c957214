//! The `shuzhuan-aggregator` binary: parses arguments and hands over to the library.

fn main() {
    eprintln!("shuzhuan-aggregator: not built yet");
    std::process::exit(2);
}
