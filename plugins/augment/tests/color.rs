//! Colour ops against torchvision's `transforms.v2.functional` on the same uint8 image.

mod common;

use clshost_plugin_api::ImageU8;
use clshost_plugin_augment::color;
use clshost_plugin_augment::photometric::color_jitter_with;
use common::{assert_close, fixture, image, ints};
use serde_json::Value;

fn run(op: &str, f: impl Fn(&mut ImageU8, &Value)) {
    let fx = fixture("color.json");
    let input = image(&fx["input"]);
    let mut n = 0;
    for c in fx["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["op"] == op)
    {
        let mut got = if c.get("input").is_some() {
            image(&c["input"])
        } else {
            input.clone()
        };
        f(&mut got, c);
        let params: Vec<String> = ["factor", "bits", "threshold", "kernel_size", "sigma"]
            .iter()
            .filter_map(|k| c.get(*k).map(|v| format!("{k}={v}")))
            .collect();
        assert_close(&got, &image(&c["output"]), 1, &format!("{op} {params:?}"));
        n += 1;
    }
    assert!(n > 0, "no `{op}` cases");
}

fn factor(c: &Value) -> f64 {
    c["factor"].as_f64().expect("factor")
}

#[test]
fn brightness() {
    run("brightness", |img, c| {
        color::adjust_brightness(img, factor(c))
    });
}

#[test]
fn contrast() {
    run("contrast", |img, c| color::adjust_contrast(img, factor(c)));
}

#[test]
fn saturation() {
    run("saturation", |img, c| {
        color::adjust_saturation(img, factor(c))
    });
}

#[test]
fn sharpness() {
    run("sharpness", |img, c| {
        color::adjust_sharpness(img, factor(c))
    });
}

#[test]
fn hue() {
    run("hue", |img, c| color::adjust_hue(img, factor(c)));
}

#[test]
fn grayscale() {
    run("grayscale", |img, _| color::grayscale(img));
}

#[test]
fn posterize() {
    run("posterize", |img, c| {
        color::posterize(img, c["bits"].as_u64().expect("bits") as u32)
    });
}

#[test]
fn solarize() {
    run("solarize", |img, c| {
        color::solarize(img, c["threshold"].as_f64().expect("threshold"))
    });
}

#[test]
fn autocontrast() {
    run("autocontrast", |img, _| color::autocontrast(img));
}

#[test]
fn equalize() {
    run("equalize", |img, _| color::equalize(img));
}

#[test]
fn invert() {
    run("invert", |img, _| color::invert(img));
}

#[test]
fn gaussian_blur() {
    run("gaussian_blur", |img, c| {
        let k = c["kernel_size"].as_u64().expect("kernel_size") as usize;
        color::gaussian_blur(img, k, c["sigma"].as_f64().expect("sigma"));
    });
}

#[test]
fn color_jitter_with_forced_order_and_factors() {
    run("color_jitter", |img, c| {
        let o = ints(&c["order"]);
        let f = common::floats(&c["factors"]);
        let order = [o[0], o[1], o[2], o[3]].map(|i| i as usize);
        color_jitter_with(img, order, [f[0], f[1], f[2], f[3]].map(Some));
    });
}
