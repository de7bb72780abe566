//! `quietbox-mcp`: glue only — flag parsing, wiring and serving live in `quietbox-runtime`.

fn main() {
    eprintln!("quietbox-mcp: not built yet; see the open issues");
    std::process::exit(2);
}
