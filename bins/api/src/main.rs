//! `quietbox-api`: glue only — flag parsing, wiring and serving live in `quietbox-runtime`.

fn main() {
    eprintln!("quietbox-api: not built yet; see the open issues");
    std::process::exit(2);
}
