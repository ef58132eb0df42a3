//! The migrations are embedded at compile time; rebuild when any of them changes or a new one
//! appears (the embedding macro alone does not tell cargo about new folders).

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
