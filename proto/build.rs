//! Compiles `avocet/v1/avocet.proto`, `avocet/v1/backups.proto` and `avocet/v1/sets.proto`
//! (and what they import: `census.proto`, `version.proto`) with protox (no system `protoc`)
//! and writes the descriptor set used by gRPC server reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=avocet");
    let descriptors = protox::compile(
        [
            "avocet/v1/avocet.proto",
            "avocet/v1/backups.proto",
            "avocet/v1/sets.proto",
        ],
        ["."],
    )?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("avocet_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
