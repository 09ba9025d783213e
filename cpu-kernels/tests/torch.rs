//! The kernels against PyTorch: convolution forward and backward over several geometries, batch
//! normalization in training mode (forward and backward) and eval mode, and max pooling (output,
//! indices, input gradient), against torch's float64 values for the same float32 inputs
//! (`scripts/fixtures/cpu_kernels.py`); ReLU and max pooling's NaN rule against their
//! definitions; and every result bit-identical whatever the number of threads.

use clshost_cpu_kernels::{
    Conv2d, Grads, NO_INDEX, Needs, NormDims, Pool2d, batch_norm_backward, batch_norm_eval,
    batch_norm_train, conv2d_backward, conv2d_forward, max_pool2d, max_pool2d_backward, relu,
    relu_backward,
};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/torch.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn pair(v: &Value) -> [usize; 2] {
    let v: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    [v[0], v[1]]
}

/// Asserts `|a - b| <= tol * max(1, |b|)` element-wise.
fn close(what: &str, actual: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tol * e.abs().max(1.0),
            "{what}[{i}]: {a} against torch's {e}"
        );
    }
}

const ALL: Needs = Needs {
    input: true,
    weight: true,
    bias: true,
};

fn conv_of(case: &Value) -> Conv2d {
    let size = |k: &str| case[k].as_u64().unwrap() as usize;
    Conv2d {
        batch: size("batch"),
        in_channels: size("in_channels"),
        in_size: pair(&case["in_size"]),
        out_channels: size("out_channels"),
        kernel: pair(&case["kernel"]),
        stride: pair(&case["stride"]),
        padding: pair(&case["padding"]),
        dilation: pair(&case["dilation"]),
    }
}

#[test]
fn convolutions_match_torch_forward_and_backward() {
    let fixture = fixture();
    for case in fixture["conv2d"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let conv = conv_of(case);
        let x = floats(&case["x"]);
        let weight = floats(&case["weight"]);
        let bias = case["bias"].as_array().map(|_| floats(&case["bias"]));
        let out = conv2d_forward(&conv, &x, &weight, bias.as_deref());
        close(
            &format!("{name} output"),
            &out,
            &floats(&case["output"]),
            1e-5,
        );

        let grads = conv2d_backward(&conv, &x, &weight, &floats(&case["grad"]), ALL);
        close(
            &format!("{name} input gradient"),
            grads.input.as_deref().unwrap(),
            &floats(&case["grad_input"]),
            1e-5,
        );
        close(
            &format!("{name} weight gradient"),
            grads.weight.as_deref().unwrap(),
            &floats(&case["grad_weight"]),
            1e-5,
        );
        if bias.is_some() {
            close(
                &format!("{name} bias gradient"),
                grads.bias.as_deref().unwrap(),
                &floats(&case["grad_bias"]),
                1e-5,
            );
        }
    }
}

#[test]
fn a_backward_computes_only_what_is_asked() {
    let fixture = fixture();
    let case = &fixture["conv2d"][0];
    let conv = conv_of(case);
    let (x, weight) = (floats(&case["x"]), floats(&case["weight"]));
    let grad = floats(&case["grad"]);
    let needs = Needs {
        input: false,
        weight: true,
        bias: false,
    };
    let grads = conv2d_backward(&conv, &x, &weight, &grad, needs);
    assert!(grads.input.is_none() && grads.bias.is_none());
    close(
        "weight gradient alone",
        grads.weight.as_deref().unwrap(),
        &floats(&case["grad_weight"]),
        1e-5,
    );
}

#[test]
fn batch_norm_matches_torch_in_training_and_eval_mode() {
    let fixture = fixture();
    let case = &fixture["batch_norm"];
    let d: Vec<usize> = case["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let dims = NormDims {
        batch: d[0],
        channels: d[1],
        positions: d[2],
    };
    let eps = case["eps"].as_f64().unwrap();
    let x = floats(&case["x"]);
    let (weight, bias) = (floats(&case["weight"]), floats(&case["bias"]));
    let train = batch_norm_train(&x, dims, &weight, &bias, eps);
    close("output", &train.output, &floats(&case["output"]), 1e-5);
    close("mean", &train.mean, &floats(&case["mean"]), 1e-6);
    close("variance", &train.var, &floats(&case["var"]), 1e-6);

    let grads = batch_norm_backward(
        &floats(&case["grad"]),
        &x,
        dims,
        &weight,
        (&train.mean, &train.invstd),
        ALL,
    );
    close(
        "input gradient",
        grads.input.as_deref().unwrap(),
        &floats(&case["grad_input"]),
        1e-5,
    );
    close(
        "scale gradient",
        grads.weight.as_deref().unwrap(),
        &floats(&case["grad_weight"]),
        1e-5,
    );
    close(
        "shift gradient",
        grads.bias.as_deref().unwrap(),
        &floats(&case["grad_bias"]),
        1e-5,
    );

    let running = (floats(&case["running_mean"]), floats(&case["running_var"]));
    let eval = batch_norm_eval(&x, dims, &weight, &bias, (&running.0, &running.1), eps);
    close("eval output", &eval, &floats(&case["eval_output"]), 1e-5);
}

#[test]
fn relu_and_its_gradient() {
    let x = [-2.0f32, -0.0, 0.0, 1e-8, 3.5, f32::MIN_POSITIVE, -1e-30];
    let y = relu(&x);
    assert_eq!(y, [0.0, 0.0, 0.0, 1e-8, 3.5, f32::MIN_POSITIVE, 0.0]);
    let g = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
    assert_eq!(relu_backward(&g, &y), [0.0, 0.0, 0.0, 4.0, 5.0, 6.0, 0.0]);
}

/// Runs `f` on a pool of `threads` threads.
fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn max_pooling_matches_torch_with_its_indices_and_ties() {
    let fixture = fixture();
    for case in fixture["max_pool2d"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let pool = Pool2d {
            planes: case["planes"].as_u64().unwrap() as usize,
            in_size: pair(&case["in_size"]),
            kernel: pair(&case["kernel"]),
            stride: pair(&case["stride"]),
            padding: pair(&case["padding"]),
            dilation: pair(&case["dilation"]),
        };
        let x = floats(&case["x"]);
        let (output, indices) = max_pool2d(&pool, &x, true);
        let indices = indices.unwrap();
        close(
            &format!("{name} output"),
            &output,
            &floats(&case["output"]),
            0.0,
        );
        let expected: Vec<u32> = case["indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(indices, expected, "{name} indices");
        let (plain, none) = max_pool2d(&pool, &x, false);
        assert_eq!((plain, none), (output, None), "{name} without indices");
        let dx = max_pool2d_backward(&pool, &floats(&case["grad"]), &indices);
        close(
            &format!("{name} grad_input"),
            &dx,
            &floats(&case["grad_input"]),
            1e-6,
        );
    }
}

#[test]
fn max_pooling_takes_a_nan_and_skips_windows_over_padding() {
    // One plane of 2x3; 2x2 windows with stride 1 and padding 1 give 3x4 outputs.
    let pool = Pool2d {
        planes: 1,
        in_size: [2, 3],
        kernel: [2, 2],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
    };
    let x = [1.0, f32::NAN, 5.0, 7.0, 2.0, f32::NEG_INFINITY];
    let (output, indices) = max_pool2d(&pool, &x, true);
    let indices = indices.unwrap();
    assert_eq!(pool.out_size(), [3, 4]);
    // ATen's rule: a NaN wins over any number (`val > max || isnan(val)`).
    assert!(output[1].is_nan() && output[2].is_nan() && output[5].is_nan());
    assert_eq!(indices[1], 1);
    // A window whose only element inside is -inf reports it, as ATen does.
    assert_eq!((output[11], indices[11]), (f32::NEG_INFINITY, 5));
    assert_eq!((output[8], indices[8]), (7.0, 3));
    // A window with the element twice (through overlapping windows) sums its gradients.
    let dx = max_pool2d_backward(&pool, &[1.0; 12], &indices);
    assert_eq!(dx.iter().sum::<f32>(), 12.0);
    // Dilation 3 with padding 1 over a 2-wide input: the window reads columns -1 and 2, both
    // padding. It reports -inf and no index, and gets no gradient.
    let empty = Pool2d {
        in_size: [1, 2],
        kernel: [1, 2],
        padding: [0, 1],
        dilation: [1, 3],
        ..pool
    };
    let (output, indices) = max_pool2d(&empty, &[3.0, 4.0], true);
    let indices = indices.unwrap();
    assert_eq!(empty.out_size(), [1, 1]);
    assert_eq!((output[0], indices[0]), (f32::NEG_INFINITY, NO_INDEX));
    assert_eq!(max_pool2d_backward(&empty, &[1.0], &indices), [0.0, 0.0]);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // Large enough for several gemm blocks and rayon tasks: a ResNet layer's shape at 16x16.
    let conv = Conv2d {
        batch: 6,
        in_channels: 32,
        in_size: [16, 16],
        out_channels: 48,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
    };
    let values = |n: usize, salt: u32| -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ salt) as f32 / u32::MAX as f32 - 0.5)
            .collect()
    };
    let x = values(conv.batch * 32 * 256, 1);
    let weight = values(48 * 32 * 9, 2);
    let grad = values(conv.batch * 48 * 256, 3);
    // The same layer with stride 2 has 64 output positions per image and one with stride 4 has
    // 16: the forward products run per image for the first two and over the chunk for the last.
    let strided = |s: usize| Conv2d {
        stride: [s, s],
        ..conv
    };
    let run = || {
        let out = conv2d_forward(&conv, &x, &weight, None);
        let mut small: Vec<Vec<f32>> = [strided(2), strided(4)]
            .iter()
            .map(|c| conv2d_forward(c, &x, &weight, None))
            .collect();
        // The backward of the stride-4 layer takes the other orientation of both products, and
        // a pointwise layer's products read the input and write its gradient directly.
        let deep = strided(4);
        let [oh, ow] = deep.out_size();
        let pointwise = Conv2d {
            kernel: [1, 1],
            padding: [0, 0],
            ..conv
        };
        small.push(conv2d_forward(&pointwise, &x, &weight[..48 * 32], None));
        let small_grads = [
            conv2d_backward(&deep, &x, &weight, &grad[..conv.batch * 48 * oh * ow], ALL),
            conv2d_backward(&pointwise, &x, &weight[..48 * 32], &grad, ALL),
        ];
        let grads = conv2d_backward(&conv, &x, &weight, &grad, ALL);
        let dims = NormDims {
            batch: conv.batch,
            channels: 48,
            positions: 256,
        };
        let ones = vec![1.0f32; 48];
        let norm = batch_norm_train(&out, dims, &ones, &ones, 1e-5);
        let norm_grads =
            batch_norm_backward(&grad, &out, dims, &ones, (&norm.mean, &norm.invstd), ALL);
        (out, grads, norm, norm_grads, small, small_grads)
    };
    let one = on_threads(1, run);
    for threads in [2, 3, 8] {
        let many = on_threads(threads, run);
        assert!(one.0 == many.0, "forward differs on {threads} threads");
        assert!(
            one.4 == many.4,
            "strided and pointwise forwards differ on {threads} threads"
        );
        assert!(
            one.1 == many.1 && one.5 == many.5,
            "convolution gradients differ on {threads} threads"
        );
        assert!(
            one.2 == many.2,
            "normalization differs on {threads} threads"
        );
        assert!(
            one.3 == many.3,
            "normalization gradients differ on {threads} threads"
        );
    }
    let Grads { input, weight, .. } = one.1;
    assert!(input.is_some() && weight.is_some());
}
