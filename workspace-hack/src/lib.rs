//! Nothing to use: this crate exists for its manifest, which names the features of third-party
//! crates that the workspace's featured builds (`clshost/mpi`, `clshost-plugin-resnet/libtorch`)
//! would otherwise turn on late, recompiling Burn and the host. See `Cargo.toml` beside it.
