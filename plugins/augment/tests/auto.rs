//! The auto-augment op set, its magnitude tables and AugMix's mixing against torchvision.

mod common;

use clshost_plugin_augment::autoaug::{self, Family, Op};
use clshost_plugin_augment::geometry::Sampling;
use common::{compare, fixture, floats, image};

fn sampling(name: &str) -> Sampling {
    if name == "bilinear" {
        Sampling::Bilinear
    } else {
        Sampling::Nearest
    }
}

/// Nearest-neighbour warps may pick the neighbouring pixel where torch's float32 grid lands
/// within rounding error of a pixel boundary; at most this fraction of values may differ.
const BOUNDARY_FRACTION: f64 = 0.01;

#[test]
fn every_op_matches_torchvision() {
    let f = fixture("auto_ops.json");
    let input = image(&f["input"]);
    let mut seen = std::collections::HashSet::new();
    for c in f["cases"].as_array().expect("cases") {
        let name = c["op"].as_str().expect("op");
        let op = Op::from_name(name).unwrap_or_else(|| panic!("unknown op {name}"));
        let m = c["magnitude"].as_f64().expect("magnitude");
        let interp = c["interpolation"].as_str().expect("interpolation");
        let got = autoaug::apply_op(input.clone(), op, m, sampling(interp));
        let want = image(&c["output"]);
        let (max, over) = compare(&got, &want, 1);
        let allowed = (want.data.len() as f64 * BOUNDARY_FRACTION) as usize;
        assert!(
            over <= allowed,
            "{name} magnitude {m} {interp}: {over} values differ by more than 1 (max {max})"
        );
        seen.insert(op);
    }
    assert_eq!(seen.len(), Op::ALL.len(), "every op is covered");
}

#[test]
fn magnitude_tables_match_torchvision() {
    let f = fixture("auto_ops.json");
    let tables = &f["tables"];
    for (family, key, bins) in [
        (Family::TrivialAugmentWide, "trivial_augment_wide", 31),
        (Family::RandAugment, "rand_augment", 31),
        (Family::AutoAugment, "auto_augment", 10),
        (Family::AugMix, "aug_mix", 10),
    ] {
        let table = tables[key].as_object().expect("table");
        for op in Op::ALL {
            let (values, _) = autoaug::magnitudes(family, op, bins, 224, 300);
            match table.get(op.name()) {
                Some(want) => {
                    let want = floats(want);
                    let got = values.unwrap_or_else(|| panic!("{key} {} has a table", op.name()));
                    assert_eq!(got.len(), want.len());
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                            "{key} {}: {g} vs {w}",
                            op.name()
                        );
                    }
                }
                None => assert!(
                    values.is_none()
                        || !matches!(
                            op,
                            Op::Identity | Op::AutoContrast | Op::Equalize | Op::Invert
                        ),
                    "{key} {} has no magnitudes",
                    op.name()
                ),
            }
        }
    }
}

#[test]
fn aug_mix_with_forced_chains_matches_torchvision() {
    let f = fixture("aug_mix.json");
    let input = image(&f["input"]);
    for c in f["cases"].as_array().expect("cases") {
        let chains: Vec<Vec<(Op, f64)>> = c["chains"]
            .as_array()
            .expect("chains")
            .iter()
            .map(|chain| {
                chain
                    .as_array()
                    .expect("chain")
                    .iter()
                    .map(|step| {
                        let op = Op::from_name(step[0].as_str().expect("op")).expect("known op");
                        (op, step[1].as_f64().expect("magnitude"))
                    })
                    .collect()
            })
            .collect();
        let weights = floats(&c["weights"]);
        let m0 = c["m0"].as_f64().expect("m0");
        let got = autoaug::aug_mix_with(&input, &chains, m0, &weights, Sampling::Bilinear);
        let want = image(&c["output"]);
        let (max, over) = compare(&got, &want, 1);
        assert_eq!(over, 0, "aug_mix {chains:?}: max difference {max}");
    }
}
