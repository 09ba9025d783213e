//! With the `libtorch` feature: compiles the C++ shim over ATen's fused backward kernels
//! (`csrc/aten_ops.cpp`) against the libtorch that torch-sys linked (`DEP_TCH_LIBTORCH_LIB`),
//! records that directory as the run path of the kit's own test binaries, passes it on to the
//! plugins built on the kit (`DEP_CLSHOST_BURN_KIT_LIBTORCH_LIB` in their build scripts), and
//! compiles in the torch version found there, for the device report.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    #[cfg(feature = "libtorch")]
    libtorch();
}

#[cfg(feature = "libtorch")]
fn libtorch() {
    use std::path::Path;

    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys reports the libtorch library directory it linked against");
    let root = Path::new(&lib).parent().unwrap_or(Path::new(&lib));
    println!("cargo:libtorch_lib={lib}");
    if std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os != "windows") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }

    println!("cargo:rerun-if-changed=csrc/aten_ops.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .file("csrc/aten_ops.cpp")
        .compile("clshost_aten_ops");

    // A pip-installed torch has `torch/version.py` beside `torch/lib`; a libtorch archive has
    // `build-version`.
    let version = std::fs::read_to_string(root.join("version.py"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let value = line.strip_prefix("__version__")?.split('\'').nth(1)?;
                Some(value.to_string())
            })
        })
        .or_else(|| std::fs::read_to_string(root.join("build-version")).ok())
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CLSHOST_LIBTORCH_VERSION={version}");
}
