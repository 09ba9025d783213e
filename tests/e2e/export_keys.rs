//! The `safetensors` exporter's files from the `resnet` plugin's resnet18 and resnet50 have
//! exactly the keys and shapes torchvision's models need for `load_state_dict(strict=True)`:
//! checked against `tests/fixtures/torchvision_keys.json` (`scripts/fixtures/torchvision_keys.py`).
//!
//! The files are left in `target/tmp/clshost-safetensors/`, where `python3
//! scripts/fixtures/torchvision_keys.py --check` loads them into torchvision.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::support::{clshost_binary, profile_dir};
use clshost::assemble::components::backbone_context;
use clshost::recipe::Recipe;
use clshost::registry::{Registry, SearchPath};
use clshost_plugin_api::{ExportMeta, WeightSet};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use serde_json::Value;

#[test]
fn resnet_safetensors_exports_have_torchvisions_keys_and_shapes() {
    clshost_binary();
    let fixture: Value = serde_json::from_str(
        &fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/torchvision_keys.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let classes = fixture["classes"].as_u64().unwrap() as u32;
    let registry = Registry::load(&SearchPath {
        dirs: vec![profile_dir()],
        ..SearchPath::default()
    })
    .unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clshost-safetensors");
    fs::create_dir_all(&out).unwrap();
    for model in ["resnet18", "resnet50"] {
        let backbone = registry
            .new_backbone(model, "()", &backbone_context(&Recipe::default(), classes))
            .unwrap();
        let exporter = registry
            .new_exporter(
                "safetensors",
                &format!("(file_name: \"{model}.safetensors\")"),
            )
            .unwrap();
        let meta = ExportMeta {
            recipe_name: "keys".into(),
            recipe: "()".into(),
            backbone: model.into(),
            class_names: (0..classes).map(|c| c.to_string().into()).collect(),
            input_height: 224,
            input_width: 224,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            extra: Vec::new().into(),
        };
        let graph = backbone.graph(WeightSet::Raw).unwrap();
        exporter.export(&graph, &meta, &out).unwrap();
        let bytes = fs::read(out.join(format!("{model}.safetensors"))).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let exported: BTreeMap<String, (Vec<usize>, Dtype)> = file
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, (view.shape().to_vec(), view.dtype())))
            .collect();

        let expected = &fixture[model]["keys"];
        let optional: Vec<&str> = fixture[model]["optional"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        for (name, (shape, dtype)) in &exported {
            let want: Vec<usize> = serde_json::from_value(expected[name].clone())
                .unwrap_or_else(|_| panic!("{model}: `{name}` is not a torchvision key"));
            assert_eq!(shape, &want, "{model}: shape of `{name}`");
            let int = name.ends_with("num_batches_tracked");
            assert_eq!(*dtype, if int { Dtype::I64 } else { Dtype::F32 }, "{name}");
        }
        let missing: Vec<&str> = expected
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|k| !exported.contains_key(*k))
            .collect();
        for key in &missing {
            assert!(
                optional.contains(key),
                "{model}: torchvision's strict load needs `{key}`, which the export lacks"
            );
        }
    }
}
