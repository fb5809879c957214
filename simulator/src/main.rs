//! The `shuzhuan-sim` binary: parses arguments and hands over to the library.

fn main() {
    eprintln!("shuzhuan-sim: not built yet");
    std::process::exit(2);
}
