//! The `shuzhuan-agent` binary: parses arguments and hands over to the library.

fn main() {
    eprintln!("shuzhuan-agent: not built yet");
    std::process::exit(2);
}
