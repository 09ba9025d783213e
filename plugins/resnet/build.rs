//! Built with the `libtorch` feature, the plugin records the libtorch directory it was linked
//! against as its run path, so it loads with no environment set.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_CLSHOST_BURN_KIT_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_CLSHOST_BURN_KIT_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
