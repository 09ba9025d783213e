//! The `onnx` exporter against PyTorch: graphs of a tiny ResNet-like network and of torchvision's
//! resnet18 and resnet50 are built here with the weights of `scripts/fixtures/onnx.py`'s formula,
//! exported, run back with tract (through `verify`) and compared with the logits PyTorch computed
//! (`tests/fixtures/onnx.json`).
//!
//! The files are left in `target/tmp/clshost-onnx/`, where `python3 scripts/fixtures/onnx.py
//! --check` runs onnx.checker and onnxruntime on them.

use std::fs;
use std::path::{Path, PathBuf};

use clshost_plugin_api::prelude::*;
use clshost_plugin_api::{Attribute, AttributeValue, ErrorKind, GraphNode, Tuple2, ValueInfo};
use clshost_plugin_export::onnx::{OnnxConfig, OnnxExporter};
use prost::Message;
use serde_json::Value;
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::dimension;

// ---------------------------------------------------------------------------------------------
// The fixture and its value formula.

fn fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx.json");
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `n` values in [-1, 1) from the name's hash and the element index (splitmix64).
fn uniform(name: &str, n: usize) -> impl Iterator<Item = f64> {
    let seed = fnv1a64(name);
    (0..n as u64).map(move |i| {
        let x = (seed ^ i).wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        2.0 * ((z >> 11) as f64 * 2f64.powi(-53)) - 1.0
    })
}

/// The value of weight `name` of `shape`, by the script's rules.
fn fixture_value(name: &str, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    let rule = |u: f64| -> f64 {
        if name.ends_with("running_var") {
            1.0 + 0.5 * u
        } else if name.ends_with("running_mean") {
            0.1 * u
        } else if shape.len() == 4 {
            u * (3.0 / (shape[1] * shape[2] * shape[3]) as f64).sqrt()
        } else if shape.len() == 2 && name.ends_with("weight") {
            u * (3.0 / shape[1] as f64).sqrt()
        } else if name.ends_with("bn3.weight") {
            0.2 * (1.0 + 0.1 * u)
        } else if name.ends_with("weight") {
            1.0 + 0.1 * u
        } else {
            0.1 * u
        }
    };
    Tensor::new(
        shape.to_vec(),
        uniform(name, n).map(|u| rule(u) as f32).collect(),
    )
    .unwrap()
}

/// The tiny network's input batch.
fn images(shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    let data = uniform("images", n).map(|u| (2.0 * u) as f32).collect();
    Tensor::new(shape.to_vec(), data).unwrap()
}

/// The first `n` rows of a tensor.
fn first(t: &Tensor, n: usize) -> Tensor {
    let mut shape = t.shape.to_vec();
    let row: usize = shape[1..].iter().product();
    shape[0] = n;
    Tensor::new(shape, t.data[..n * row].to_vec()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Graphs in torchvision naming.

fn ints(v: &[i64]) -> AttributeValue {
    AttributeValue::Ints(v.to_vec().into())
}

fn attr(name: &str, value: AttributeValue) -> Attribute {
    Attribute {
        name: name.into(),
        value,
    }
}

/// Builds a [`ModelGraph`] node by node, creating each layer's weights with the fixture formula.
struct Builder {
    nodes: Vec<GraphNode>,
    weights: Vec<NamedTensor>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            nodes: Vec::new(),
            weights: Vec::new(),
        }
    }

    fn weight(&mut self, name: String, shape: &[usize]) -> String {
        self.weights.push(NamedTensor {
            name: name.as_str().into(),
            tensor: fixture_value(&name, shape),
        });
        name
    }

    fn node(&mut self, op: &str, name: &str, inputs: Vec<String>, attrs: Vec<Attribute>) -> String {
        self.nodes.push(GraphNode {
            op: op.into(),
            name: name.into(),
            inputs: inputs.into_iter().map(RString::from).collect(),
            outputs: vec![RString::from(name)].into(),
            attributes: attrs.into(),
        });
        name.to_string()
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        x: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: i64,
        pad: i64,
        bias: bool,
    ) -> String {
        let mut inputs = vec![
            x.to_string(),
            self.weight(format!("{name}.weight"), &[cout, cin, k, k]),
        ];
        if bias {
            inputs.push(self.weight(format!("{name}.bias"), &[cout]));
        }
        let k = k as i64;
        let attrs = vec![
            attr("kernel_shape", ints(&[k, k])),
            attr("strides", ints(&[stride, stride])),
            attr("pads", ints(&[pad; 4])),
            attr("dilations", ints(&[1, 1])),
            attr("group", AttributeValue::Int(1)),
        ];
        self.node("Conv", name, inputs, attrs)
    }

    fn bn(&mut self, name: &str, x: &str, c: usize) -> String {
        let mut inputs = vec![x.to_string()];
        for p in ["weight", "bias", "running_mean", "running_var"] {
            inputs.push(self.weight(format!("{name}.{p}"), &[c]));
        }
        let attrs = vec![
            attr("epsilon", AttributeValue::Float(1e-5)),
            attr("momentum", AttributeValue::Float(0.9)),
        ];
        self.node("BatchNormalization", name, inputs, attrs)
    }

    fn relu(&mut self, name: &str, x: &str) -> String {
        self.node("Relu", name, vec![x.into()], Vec::new())
    }

    fn maxpool(&mut self, x: &str) -> String {
        let attrs = vec![
            attr("kernel_shape", ints(&[3, 3])),
            attr("strides", ints(&[2, 2])),
            attr("pads", ints(&[1; 4])),
        ];
        self.node("MaxPool", "maxpool", vec![x.into()], attrs)
    }

    fn add(&mut self, name: &str, a: &str, b: &str) -> String {
        self.node("Add", name, vec![a.into(), b.into()], Vec::new())
    }

    /// Global pooling, flatten and the `fc` layer.
    fn head(&mut self, x: &str, features: usize, classes: usize, pool: Pool) -> String {
        let pooled = match pool {
            Pool::Global => self.node("GlobalAveragePool", "avgpool", vec![x.into()], Vec::new()),
            Pool::ReduceMean => self.node(
                "ReduceMean",
                "avgpool",
                vec![x.into()],
                vec![
                    attr("axes", ints(&[2, 3])),
                    attr("keepdims", AttributeValue::Int(1)),
                ],
            ),
        };
        let flat = self.node(
            "Flatten",
            "flatten",
            vec![pooled],
            vec![attr("axis", AttributeValue::Int(1))],
        );
        let w = self.weight("fc.weight".into(), &[classes, features]);
        let b = self.weight("fc.bias".into(), &[classes]);
        self.node(
            "Gemm",
            "fc",
            vec![flat, w, b],
            vec![attr("transB", AttributeValue::Int(1))],
        )
    }

    /// torchvision's `BasicBlock` at `name`.
    fn basic(&mut self, name: &str, x: &str, cin: usize, cout: usize, stride: i64) -> String {
        let y = self.conv(&format!("{name}.conv1"), x, cin, cout, 3, stride, 1, false);
        let y = self.bn(&format!("{name}.bn1"), &y, cout);
        let y = self.relu(&format!("{name}.relu1"), &y);
        let y = self.conv(&format!("{name}.conv2"), &y, cout, cout, 3, 1, 1, false);
        let y = self.bn(&format!("{name}.bn2"), &y, cout);
        let shortcut = self.downsample(name, x, cin, cout, stride);
        let sum = self.add(&format!("{name}.add"), &y, &shortcut);
        self.relu(&format!("{name}.relu2"), &sum)
    }

    /// torchvision's `Bottleneck` (stride on the 3x3) at `name`.
    fn bottleneck(&mut self, name: &str, x: &str, cin: usize, width: usize, stride: i64) -> String {
        let cout = width * 4;
        let y = self.conv(&format!("{name}.conv1"), x, cin, width, 1, 1, 0, false);
        let y = self.bn(&format!("{name}.bn1"), &y, width);
        let y = self.relu(&format!("{name}.relu1"), &y);
        let y = self.conv(
            &format!("{name}.conv2"),
            &y,
            width,
            width,
            3,
            stride,
            1,
            false,
        );
        let y = self.bn(&format!("{name}.bn2"), &y, width);
        let y = self.relu(&format!("{name}.relu2"), &y);
        let y = self.conv(&format!("{name}.conv3"), &y, width, cout, 1, 1, 0, false);
        let y = self.bn(&format!("{name}.bn3"), &y, cout);
        let shortcut = self.downsample(name, x, cin, cout, stride);
        let sum = self.add(&format!("{name}.add"), &y, &shortcut);
        self.relu(&format!("{name}.relu3"), &sum)
    }

    /// The identity, or a 1x1 convolution and BatchNorm where the shape changes.
    fn downsample(&mut self, name: &str, x: &str, cin: usize, cout: usize, stride: i64) -> String {
        if cin == cout && stride == 1 {
            return x.to_string();
        }
        let y = self.conv(
            &format!("{name}.downsample.0"),
            x,
            cin,
            cout,
            1,
            stride,
            0,
            false,
        );
        self.bn(&format!("{name}.downsample.1"), &y, cout)
    }

    fn finish(self, input: &str, output: &str, classes: usize) -> ModelGraph {
        ModelGraph {
            inputs: vec![ValueInfo {
                name: input.into(),
                shape: vec![-1, 3, -1, -1].into(),
            }]
            .into(),
            outputs: vec![ValueInfo {
                name: output.into(),
                shape: vec![-1, classes as i64].into(),
            }]
            .into(),
            nodes: self.nodes.into(),
            initializers: self.weights.into(),
        }
    }
}

/// How the tiny network pools before its classifier.
#[derive(Clone, Copy)]
enum Pool {
    Global,
    ReduceMean,
}

/// The network of the script's `Tiny` class.
fn tiny(pool: Pool) -> ModelGraph {
    let mut g = Builder::new();
    let x = g.conv("conv1", "input", 3, 8, 3, 2, 1, true);
    let x = g.bn("bn1", &x, 8);
    let x = g.relu("relu", &x);
    let x = g.maxpool(&x);
    let x = g.basic("layer1.0", &x, 8, 8, 1);
    let x = g.basic("layer2.0", &x, 8, 16, 2);
    let out = g.head(&x, 16, 4, pool);
    g.finish("input", &out, 4)
}

/// torchvision's resnet18 or resnet50 with `classes` outputs.
fn resnet(arch: &str, classes: usize) -> ModelGraph {
    let (bottleneck, depths) = match arch {
        "resnet18" => (false, [2, 2, 2, 2]),
        "resnet50" => (true, [3, 4, 6, 3]),
        _ => unreachable!("no such architecture in the fixture"),
    };
    let mut g = Builder::new();
    let x = g.conv("conv1", "input", 3, 64, 7, 2, 3, false);
    let x = g.bn("bn1", &x, 64);
    let x = g.relu("relu", &x);
    let mut x = g.maxpool(&x);
    let mut cin = 64;
    for (stage, depth) in depths.into_iter().enumerate() {
        let width = 64 << stage;
        for block in 0..depth {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let name = format!("layer{}.{block}", stage + 1);
            x = if bottleneck {
                let y = g.bottleneck(&name, &x, cin, width, stride);
                cin = width * 4;
                y
            } else {
                let y = g.basic(&name, &x, cin, width, stride);
                cin = width;
                y
            };
        }
    }
    let out = g.head(&x, cin, classes, Pool::Global);
    g.finish("input", &out, classes)
}

// ---------------------------------------------------------------------------------------------
// Exporting and reading back.

fn meta(recipe_name: &str, backbone: &str, classes: usize, size: u32) -> ExportMeta {
    let names = ["cat", "dog", "bird", "fish", "horse"];
    ExportMeta {
        recipe_name: recipe_name.into(),
        recipe: format!("(name: \"{recipe_name}\")").into(),
        backbone: backbone.into(),
        class_names: names[..classes].iter().map(|&n| RString::from(n)).collect(),
        input_height: size,
        input_width: size,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        extra: vec![Tuple2("best_top1".into(), "0.75".into())].into(),
    }
}

/// Where the exports are left for the Python check.
fn exports_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clshost-onnx");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn exporter(file: &str, config: OnnxConfig) -> OnnxExporter {
    OnnxExporter::new(OnnxConfig {
        file_name: format!("{file}.onnx"),
        ..config
    })
    .unwrap()
}

fn export(exporter: &OnnxExporter, graph: &ModelGraph, meta: &ExportMeta) -> Vec<PathBuf> {
    let files = exporter.export(graph, meta, &exports_dir()).unwrap();
    assert_eq!(files.len(), 1);
    files
}

fn read(path: &Path) -> pb::ModelProto {
    pb::ModelProto::decode(fs::read(path).unwrap().as_slice()).unwrap()
}

fn ops(model: &pb::ModelProto) -> Vec<&str> {
    let graph = model.graph.as_ref().unwrap();
    graph.node.iter().map(|n| n.op_type.as_str()).collect()
}

/// The dimensions of the first graph input, as text (`batch` or a size).
fn input_dims(model: &pb::ModelProto) -> Vec<String> {
    let input = &model.graph.as_ref().unwrap().input[0];
    let Some(pb::type_proto::Value::TensorType(t)) = &input.r#type.as_ref().unwrap().value else {
        panic!("input is not a tensor");
    };
    t.shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| match d.value.as_ref().unwrap() {
            dimension::Value::DimValue(n) => n.to_string(),
            dimension::Value::DimParam(s) => s.clone(),
        })
        .collect()
}

/// Exports the tiny network with `config`, checks it against the fixture logits `expected` on
/// the whole batch, and returns the files and the measured difference.
fn tiny_round_trip(
    file: &str,
    recipe: &str,
    config: OnnxConfig,
    pool: Pool,
    expected: &str,
) -> (Vec<PathBuf>, f64) {
    let fx = fixture();
    let t = &fx["tiny"];
    let x = images(&usizes(&t["input_shape"]));
    let logits = Tensor::new(vec![7, 4], floats(&t[expected])).unwrap();
    let exporter = exporter(file, config);
    let graph = tiny(pool);
    let files = export(&exporter, &graph, &meta(recipe, "tiny", 4, 32));
    let report = exporter
        .verify(&files, &graph, x.view(), logits.view())
        .unwrap();
    let diff = report.max_abs_diff.unwrap();
    println!("{file}: {}", report.detail);
    (files, diff)
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn the_formula_matches_the_script_and_the_graph_has_torchs_parameters() {
    let fx = fixture();
    let t = &fx["tiny"];
    let x = images(&usizes(&t["input_shape"]));
    assert_eq!(x.data[..8], floats(&t["input_head"])[..]);
    let graph = tiny(Pool::Global);
    let params = t["params"].as_object().unwrap();
    assert_eq!(graph.initializers.len(), params.len());
    for w in graph.initializers.iter() {
        let shape = usizes(&params[w.name.as_str()]);
        assert_eq!(w.tensor.shape.as_slice(), shape, "{}", w.name);
    }
}

#[test]
fn tiny_network_matches_pytorch_with_a_dynamic_batch_of_7_and_of_1() {
    let fx = fixture();
    let t = &fx["tiny"];
    let (files, diff) = tiny_round_trip(
        "tiny",
        "tiny",
        OnnxConfig::default(),
        Pool::Global,
        "logits",
    );
    assert!(diff <= 1e-4, "max abs diff {diff}");

    let model = read(&files[0]);
    assert_eq!(input_dims(&model), ["batch", "3", "32", "32"]);
    assert_eq!(model.opset_import[0].version, 17);
    assert_eq!(model.ir_version, 8);
    assert_eq!(
        ops(&model),
        [
            "Conv",
            "BatchNormalization",
            "Relu",
            "MaxPool",
            "Conv",
            "BatchNormalization",
            "Relu",
            "Conv",
            "BatchNormalization",
            "Add",
            "Relu",
            "Conv",
            "BatchNormalization",
            "Relu",
            "Conv",
            "BatchNormalization",
            "Conv",
            "BatchNormalization",
            "Add",
            "Relu",
            "GlobalAveragePool",
            "Flatten",
            "Gemm"
        ]
    );

    // The same file, one image.
    let x = images(&usizes(&t["input_shape"]));
    let logits = Tensor::new(vec![7, 4], floats(&t["logits"])).unwrap();
    let exporter = exporter("tiny", OnnxConfig::default());
    let report = exporter
        .verify(
            &files,
            &tiny(Pool::Global),
            first(&x, 1).view(),
            first(&logits, 1).view(),
        )
        .unwrap();
    assert!(report.max_abs_diff.unwrap() <= 1e-4, "{}", report.detail);
    assert!(report.detail.contains("on 1 images"), "{}", report.detail);
}

#[test]
fn folded_batchnorm_removes_the_nodes_and_matches_pytorch() {
    let config = OnnxConfig {
        fold_batchnorm: true,
        ..OnnxConfig::default()
    };
    let (files, diff) = tiny_round_trip("tiny_folded", "tiny", config, Pool::Global, "logits");
    assert!(diff <= 1e-4, "max abs diff {diff}");
    let model = read(&files[0]);
    let ops = ops(&model);
    assert!(!ops.contains(&"BatchNormalization"), "{ops:?}");
    assert_eq!(ops.iter().filter(|&&op| op == "Conv").count(), 6);
    let graph = model.graph.as_ref().unwrap();
    let names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"layer1.0.conv1.bias"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("running")), "{names:?}");
    let meta = |key: &str| {
        model
            .metadata_props
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    };
    assert_eq!(meta("batchnorm_folded"), Some("true"));
}

#[test]
fn fp16_weights_match_pytorch_with_float16_weights() {
    // Against PyTorch with the same weights rounded to float16: as close as float32 exports
    // (the logits are below 1, so the relative fp16 tolerance is absolute here).
    let config = OnnxConfig {
        fp16: true,
        fp16_tolerance: 1e-4,
        ..OnnxConfig::default()
    };
    let (files, diff) = tiny_round_trip(
        "tiny_fp16",
        "tiny_fp16",
        config,
        Pool::Global,
        "logits_fp16_weights",
    );
    assert!(diff <= 1e-4, "max abs diff {diff}");
    let model = read(&files[0]);
    let graph = model.graph.as_ref().unwrap();
    assert!(
        graph
            .initializer
            .iter()
            .all(|t| t.data_type == DataType::Float16 as i32)
    );
    let stored: usize = graph.initializer.iter().map(|t| t.raw_data.len()).sum();
    let elements: usize = tiny(Pool::Global)
        .initializers
        .iter()
        .map(|w| w.tensor.data.len())
        .sum();
    assert_eq!(stored, 2 * elements);

    // Against the float32 logits, the default fp16 tolerance accepts the rounding error, and a
    // float32-sized tolerance rejects it loudly.
    let fx = fixture();
    let x = images(&usizes(&fx["tiny"]["input_shape"]));
    let fp32 = Tensor::new(vec![7, 4], floats(&fx["tiny"]["logits"])).unwrap();
    let graph = tiny(Pool::Global);
    let lenient = exporter(
        "tiny_fp16",
        OnnxConfig {
            fp16: true,
            ..OnnxConfig::default()
        },
    );
    let report = lenient
        .verify(&files, &graph, x.view(), fp32.view())
        .unwrap();
    let rounding = report.max_abs_diff.unwrap();
    assert!(rounding > 1e-5 && rounding <= 1e-2, "{rounding}");
    let strict = exporter(
        "tiny_fp16",
        OnnxConfig {
            fp16: true,
            fp16_tolerance: 1e-5,
            ..OnnxConfig::default()
        },
    );
    let err = strict
        .verify(&files, &graph, x.view(), fp32.view())
        .unwrap_err();
    assert!(err.message.contains("failed verification"), "{err}");
}

#[test]
fn metadata_names_and_softmax_output() {
    let config = OnnxConfig {
        input_name: "pixels".into(),
        output_name: "scores".into(),
        softmax: true,
        opset: 18,
        ..OnnxConfig::default()
    };
    let (files, diff) = tiny_round_trip("tiny_softmax", "tiny", config, Pool::ReduceMean, "logits");
    assert!(diff <= 1e-4, "max abs diff {diff}");
    let model = read(&files[0]);
    let graph = model.graph.as_ref().unwrap();
    assert_eq!(graph.input[0].name, "pixels");
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outputs, ["scores", "probabilities"]);
    assert_eq!(model.ir_version, 8);
    let reduce = graph
        .node
        .iter()
        .find(|n| n.op_type == "ReduceMean")
        .unwrap();
    assert_eq!(reduce.input, ["layer2.0.relu2", "avgpool.axes"]);
    assert!(reduce.attribute.iter().all(|a| a.name != "axes"));

    let props: std::collections::HashMap<&str, &str> = model
        .metadata_props
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    let json = |key: &str| serde_json::from_str::<Value>(props[key]).unwrap();
    assert_eq!(
        json("class_names"),
        serde_json::json!(["cat", "dog", "bird", "fish"])
    );
    assert_eq!(json("input_size"), serde_json::json!([32, 32]));
    assert_eq!(floats(&json("mean")), [0.485, 0.456, 0.406]);
    assert_eq!(floats(&json("std")), [0.229, 0.224, 0.225]);
    assert_eq!(props["recipe_name"], "tiny");
    assert_eq!(props["recipe"], "(name: \"tiny\")");
    assert_eq!(props["backbone"], "tiny");
    assert_eq!(props["input_name"], "pixels");
    assert_eq!(props["output_name"], "scores");
    assert_eq!(props["probabilities_name"], "probabilities");
    assert_eq!(props["fp16_weights"], "false");
    assert_eq!(props["best_top1"], "0.75");
    assert_eq!(model.producer_name, "clshost");
}

#[test]
fn reduce_mean_pooling_exports_at_the_oldest_and_newest_opsets() {
    for opset in [13, 21] {
        let config = OnnxConfig {
            opset,
            ..OnnxConfig::default()
        };
        let file = format!("tiny_opset{opset}");
        let (files, diff) = tiny_round_trip(&file, "tiny", config, Pool::ReduceMean, "logits");
        assert!(diff <= 1e-4, "opset {opset}: max abs diff {diff}");
        let model = read(&files[0]);
        assert_eq!(model.opset_import[0].version, opset);
        let reduce = model
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .find(|n| n.op_type == "ReduceMean")
            .unwrap()
            .clone();
        assert_eq!(reduce.input.len(), if opset >= 18 { 2 } else { 1 });
    }
}

#[test]
fn a_fixed_batch_is_declared_and_enforced() {
    let config = OnnxConfig {
        dynamic_batch: false,
        batch_size: 7,
        ..OnnxConfig::default()
    };
    let (files, diff) = tiny_round_trip(
        "tiny_batch7",
        "tiny",
        config.clone(),
        Pool::Global,
        "logits",
    );
    assert!(diff <= 1e-4, "max abs diff {diff}");
    assert_eq!(input_dims(&read(&files[0])), ["7", "3", "32", "32"]);
    let fx = fixture();
    let x = images(&usizes(&fx["tiny"]["input_shape"]));
    let logits = Tensor::new(vec![7, 4], floats(&fx["tiny"]["logits"])).unwrap();
    let err = exporter("tiny_batch7", config)
        .verify(
            &files,
            &tiny(Pool::Global),
            first(&x, 1).view(),
            first(&logits, 1).view(),
        )
        .unwrap_err();
    assert!(
        err.message.contains(
            "input `images` is FLOAT[7, 3, 32, 32]; the sample batch has shape [1, 3, 32, 32]"
        ),
        "{err}"
    );
}

/// The largest absolute difference between two float slices of the same length.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn an_export_opens_again_with_its_metadata_and_runs_any_batch_size() {
    let config = OnnxConfig {
        dynamic_batch: false,
        batch_size: 7,
        ..OnnxConfig::default()
    };
    let (files, _) = tiny_round_trip("tiny_open", "tiny", config, Pool::Global, "logits");
    let mut model = OnnxExporter::open(&files[0])
        .unwrap()
        .expect("the onnx exporter opens its own file");
    assert_eq!(model.runner(), "tract");
    let written = meta("tiny", "tiny", 4, 32);
    let opened = model.meta();
    assert_eq!(opened.class_names, written.class_names);
    assert_eq!((opened.input_height, opened.input_width), (32, 32));
    assert_eq!((opened.mean, opened.std), (written.mean, written.std));
    assert_eq!(
        (opened.recipe_name, opened.recipe, opened.backbone),
        (written.recipe_name, written.recipe, written.backbone)
    );
    let extra: Vec<(&str, &str)> = opened
        .extra
        .iter()
        .map(|e| (e.0.as_str(), e.1.as_str()))
        .collect();
    assert!(extra.contains(&("best_top1", "0.75")), "{extra:?}");
    assert!(extra.contains(&("fp16_weights", "false")), "{extra:?}");

    // The file declares a batch of 7: 3 images run padded, 10 in two chunks.
    let fx = fixture();
    let x = images(&usizes(&fx["tiny"]["input_shape"]));
    let expected = floats(&fx["tiny"]["logits"]);
    let three = model.run(first(&x, 3).view()).unwrap();
    assert_eq!(three.shape.as_slice(), [3, 4]);
    assert!(max_diff(&three.data, &expected[..12]) <= 1e-4);
    let mut ten = x.data.to_vec();
    ten.extend_from_slice(&x.data[..3 * 3 * 32 * 32]);
    let ten = Tensor::new(vec![10, 3, 32, 32], ten).unwrap();
    let logits = model.run(ten.view()).unwrap();
    assert_eq!(logits.shape.as_slice(), [10, 4]);
    let mut want = expected.clone();
    want.extend_from_slice(&expected[..12]);
    assert!(max_diff(&logits.data, &want) <= 1e-4);
}

#[test]
fn only_onnx_files_open_and_a_broken_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("model.safetensors");
    fs::write(&other, b"not read").unwrap();
    assert!(OnnxExporter::open(&other).unwrap().is_none());
    let broken = dir.path().join("model.onnx");
    fs::write(&broken, b"\xff\xff not protobuf").unwrap();
    let err = OnnxExporter::open(&broken)
        .err()
        .expect("a broken .onnx file");
    assert!(err.message.contains("is not an ONNX model"), "{err}");
}

#[test]
fn verification_fails_loudly_beyond_the_tolerance() {
    let fx = fixture();
    let x = images(&usizes(&fx["tiny"]["input_shape"]));
    let mut logits = Tensor::new(vec![7, 4], floats(&fx["tiny"]["logits"])).unwrap();
    logits.data[9] += 1e-3;
    let exporter = exporter("tiny_tolerance", OnnxConfig::default());
    let graph = tiny(Pool::Global);
    let dir = tempfile::tempdir().unwrap();
    let files = exporter
        .export(&graph, &meta("tiny", "tiny", 4, 32), dir.path())
        .unwrap();
    let err = exporter
        .verify(&files, &graph, x.view(), logits.view())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("failed verification"), "{err}");
    assert!(err.message.contains("beyond the tolerance 1e-4"), "{err}");
    assert!(err.message.contains("`logits` of image 2 class 1"), "{err}");
}

#[test]
fn corrupted_graphs_and_files_are_rejected_with_clear_errors() {
    let exporter = exporter("corrupt", OnnxConfig::default());
    let meta = meta("tiny", "tiny", 4, 32);
    let dir = tempfile::tempdir().unwrap();

    // A node reading a value nothing defines.
    let mut graph = tiny(Pool::Global);
    graph.nodes[4].inputs[0] = "layer0.missing".into();
    let err = exporter.export(&graph, &meta, dir.path()).unwrap_err();
    assert_eq!(
        err.message.as_str(),
        "invalid ONNX model: node `layer1.0.conv1` (Conv): reads `layer0.missing`, which no \
         graph input, initializer or earlier node defines"
    );
    assert!(!dir.path().join("corrupt.onnx").exists());

    // A convolution weight for the wrong number of input channels.
    let mut graph = tiny(Pool::Global);
    let w = graph
        .initializers
        .iter_mut()
        .find(|w| w.name.as_str() == "layer2.0.conv2.weight")
        .unwrap();
    w.tensor = Tensor::zeros(vec![16, 8, 3, 3]);
    let err = exporter.export(&graph, &meta, dir.path()).unwrap_err();
    assert_eq!(
        err.message.as_str(),
        "invalid ONNX model: tract's type and shape analysis fails: Failed analyse for node #48 \
         \"layer2.0.conv2\" ConvHir: Infering facts: Applying rule inputs[0].shape[1] == \
         1*{inputs[1].shape[1]}: Impossible to unify Val(16) with Val(8)."
    );

    // Residual branches of different shapes.
    let mut graph = tiny(Pool::Global);
    let add = graph
        .nodes
        .iter_mut()
        .find(|n| n.name.as_str() == "layer2.0.add")
        .unwrap();
    add.inputs[1] = "layer1.0.relu2".into();
    let err = exporter.export(&graph, &meta, dir.path()).unwrap_err();
    assert!(
        err.message
            .starts_with("invalid ONNX model: tract's type and shape analysis fails: "),
        "{err}"
    );
    // tract's analysis resolves a broadcast lazily: it fails at the first node that needs the sum's
    // shape (`fc`), naming the two sizes that do not broadcast.
    assert!(
        err.message.contains("Broadcast([Val(16), Val(8)])"),
        "{err}"
    );

    // An operator the exporter does not know.
    let mut graph = tiny(Pool::Global);
    graph.nodes[2].op = "Gelu".into();
    let err = exporter.export(&graph, &meta, dir.path()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);
    assert!(
        err.message
            .contains("operator `Gelu` is not one the exporter supports"),
        "{err}"
    );

    // A written file whose node list was damaged, and one that is not protobuf at all.
    let graph = tiny(Pool::Global);
    let files = exporter.export(&graph, &meta, dir.path()).unwrap();
    let mut model = read(&files[0]);
    model.graph.as_mut().unwrap().node.remove(3);
    fs::write(&files[0], model.encode_to_vec()).unwrap();
    let x = images(&[1, 3, 32, 32]);
    let logits = Tensor::zeros(vec![1, 4]);
    let err = exporter
        .verify(&files, &graph, x.view(), logits.view())
        .unwrap_err();
    assert_eq!(
        err.message.as_str(),
        "invalid ONNX model: node `layer1.0.conv1` (Conv): reads `maxpool`, which no graph \
         input, initializer or earlier node defines"
    );
    let mut model = read(&files[0]);
    model.graph.as_mut().unwrap().initializer[0]
        .raw_data
        .truncate(10);
    fs::write(&files[0], model.encode_to_vec()).unwrap();
    let err = exporter
        .verify(&files, &graph, x.view(), logits.view())
        .unwrap_err();
    assert!(
        err.message
            .contains("initializer `conv1.weight` of shape [8, 3, 3, 3] needs 864 bytes, holds 10"),
        "{err}"
    );
    fs::write(&files[0], b"\xff\xff\xff definitely not protobuf").unwrap();
    let err = exporter
        .verify(&files, &graph, x.view(), logits.view())
        .unwrap_err();
    assert!(err.message.contains("is not an ONNX model"), "{err}");
}

#[test]
fn class_names_must_match_the_logits() {
    let exporter = exporter("tiny_names", OnnxConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let err = exporter
        .export(
            &tiny(Pool::Global),
            &meta("tiny", "tiny", 3, 32),
            dir.path(),
        )
        .unwrap_err();
    assert_eq!(
        err.message.as_str(),
        "3 class names for a model with 4 outputs"
    );
}

#[test]
fn resnet18_and_resnet50_match_torchvision() {
    let fx = fixture();
    for arch in ["resnet18", "resnet50"] {
        let r = &fx[arch];
        let classes = r["classes"].as_u64().unwrap() as usize;
        let shape = usizes(&r["input_shape"]);
        let x = fixture_value("input", &shape);
        let logits = Tensor::new(vec![shape[0], classes], floats(&r["logits"])).unwrap();
        let graph = resnet(arch, classes);
        let exporter = exporter(arch, OnnxConfig::default());
        let files = export(&exporter, &graph, &meta(arch, arch, classes, 64));
        let report = exporter
            .verify(&files, &graph, x.view(), logits.view())
            .unwrap();
        println!("{arch}: {}", report.detail);
        let diff = report.max_abs_diff.unwrap();
        assert!(diff <= 1e-4, "{arch}: max abs diff {diff}");
    }
}
