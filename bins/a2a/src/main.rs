//! `quietbox-a2a`: glue only — flag parsing, wiring and serving live in `quietbox-runtime`.

fn main() {
    eprintln!("quietbox-a2a: not built yet; see the open issues");
    std::process::exit(2);
}
