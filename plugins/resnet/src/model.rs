//! The ResNet module in Burn, layer for layer and name for name as torchvision's `resnet.py`
//! (v1.5: a bottleneck's stride is on its 3x3 convolution), and its [`ModelFamily`].

use burn::module::Module;
use burn::nn::Initializer;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use clshost_burn_kit::nn::{BatchNorm2d, Linear, conv2d, dropout, max_pool2d, relu};
use clshost_burn_kit::{
    ChaCha8Rng, ClassifierModel, ForwardContext, GraphBuilder, ModelFamily, burn,
};
use clshost_plugin_api::PluginError;
use rand_distr::{Distribution, Normal, Uniform};

/// Which ResNet: blocks per stage and block type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Architecture {
    /// Blocks in `layer1` .. `layer4`.
    pub blocks: [usize; 4],
    /// Bottleneck blocks (1x1, 3x3, 1x1 with 4x expansion) instead of basic ones (3x3, 3x3).
    pub bottleneck: bool,
}

impl Architecture {
    /// The architecture of `resnet{depth}` (18, 34 or 50).
    pub fn of_depth(depth: usize) -> Option<Self> {
        match depth {
            18 => Some(Architecture {
                blocks: [2, 2, 2, 2],
                bottleneck: false,
            }),
            34 => Some(Architecture {
                blocks: [3, 4, 6, 3],
                bottleneck: false,
            }),
            50 => Some(Architecture {
                blocks: [3, 4, 6, 3],
                bottleneck: true,
            }),
            _ => None,
        }
    }

    /// Output channels of a block over `planes`.
    fn expansion(&self) -> usize {
        if self.bottleneck { 4 } else { 1 }
    }
}

/// Everything that shapes the network besides the class count.
#[derive(Debug, Clone, PartialEq)]
pub struct ResNetFamily {
    /// Depth and block type.
    pub arch: Architecture,
    /// 3x3 stride-1 stem without max-pool, for 32x32 inputs.
    pub small_input: bool,
    /// Dropout probability before the classifier.
    pub drop_rate: f64,
    /// Initialize the last BatchNorm scale of each residual branch to zero.
    pub zero_init_residual: bool,
}

/// A convolution without bias, with explicit symmetric padding.
fn conv<B: Backend>(
    inputs: usize,
    outputs: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    device: &B::Device,
) -> Conv2d<B> {
    Conv2dConfig::new([inputs, outputs], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(false)
        .with_initializer(Initializer::Zeros)
        .init(device)
}

/// A residual block: basic (`conv1`, `conv2`) or bottleneck (plus `conv3`), with an optional
/// projection shortcut `downsample` (`downsample.0` convolution, `downsample.1` BatchNorm).
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm2d<B>,
    conv2: Conv2d<B>,
    bn2: BatchNorm2d<B>,
    conv3: Option<Conv2d<B>>,
    bn3: Option<BatchNorm2d<B>>,
    downsample: Option<(Conv2d<B>, BatchNorm2d<B>)>,
}

impl<B: Backend> Block<B> {
    fn new(
        arch: &Architecture,
        inputs: usize,
        planes: usize,
        stride: usize,
        device: &B::Device,
    ) -> Self {
        let outputs = planes * arch.expansion();
        let downsample = (stride != 1 || inputs != outputs).then(|| {
            (
                conv(inputs, outputs, 1, stride, 0, device),
                BatchNorm2d::new(outputs, device),
            )
        });
        if arch.bottleneck {
            Block {
                conv1: conv(inputs, planes, 1, 1, 0, device),
                bn1: BatchNorm2d::new(planes, device),
                conv2: conv(planes, planes, 3, stride, 1, device),
                bn2: BatchNorm2d::new(planes, device),
                conv3: Some(conv(planes, outputs, 1, 1, 0, device)),
                bn3: Some(BatchNorm2d::new(outputs, device)),
                downsample,
            }
        } else {
            Block {
                conv1: conv(inputs, planes, 3, stride, 1, device),
                bn1: BatchNorm2d::new(planes, device),
                conv2: conv(planes, planes, 3, 1, 1, device),
                bn2: BatchNorm2d::new(planes, device),
                conv3: None,
                bn3: None,
                downsample,
            }
        }
    }

    fn forward(&self, x: Tensor<B, 4>, ctx: &ForwardContext) -> Tensor<B, 4> {
        let mut out = relu(self.bn1.forward(conv2d(&self.conv1, x.clone()), ctx));
        out = self.bn2.forward(conv2d(&self.conv2, out), ctx);
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            out = bn3.forward(conv2d(conv3, relu(out)), ctx);
        }
        let identity = match &self.downsample {
            Some((conv, bn)) => bn.forward(conv2d(conv, x), ctx),
            None => x,
        };
        relu(out.add(identity))
    }

    fn graph(&self, g: &mut GraphBuilder, name: &str, input: &str) -> Result<String, PluginError> {
        let mut out = g.conv2d(&format!("{name}.conv1"), input, &self.conv1)?;
        out = g.batch_norm(&format!("{name}.bn1"), &out, &self.bn1);
        out = g.relu(&format!("{name}.relu1"), &out);
        out = g.conv2d(&format!("{name}.conv2"), &out, &self.conv2)?;
        out = g.batch_norm(&format!("{name}.bn2"), &out, &self.bn2);
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            out = g.relu(&format!("{name}.relu2"), &out);
            out = g.conv2d(&format!("{name}.conv3"), &out, conv3)?;
            out = g.batch_norm(&format!("{name}.bn3"), &out, bn3);
        }
        let identity = match &self.downsample {
            Some((conv, bn)) => {
                let d = g.conv2d(&format!("{name}.downsample.0"), input, conv)?;
                g.batch_norm(&format!("{name}.downsample.1"), &d, bn)
            }
            None => input.to_string(),
        };
        let sum = g.add(&format!("{name}.add"), &out, &identity);
        Ok(g.relu(&format!("{name}.relu"), &sum))
    }
}

/// A torchvision ResNet.
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm2d<B>,
    layer1: Vec<Block<B>>,
    layer2: Vec<Block<B>>,
    layer3: Vec<Block<B>>,
    layer4: Vec<Block<B>>,
    fc: Linear<B>,
    small_input: bool,
    drop_rate: f64,
}

impl<B: Backend> ResNet<B> {
    fn stages(&self) -> [(&str, &Vec<Block<B>>); 4] {
        [
            ("layer1", &self.layer1),
            ("layer2", &self.layer2),
            ("layer3", &self.layer3),
            ("layer4", &self.layer4),
        ]
    }
}

impl<B: Backend> ClassifierModel<B> for ResNet<B> {
    fn forward(&self, images: Tensor<B, 4>, ctx: &ForwardContext) -> Tensor<B, 2> {
        let mut x = relu(self.bn1.forward(conv2d(&self.conv1, images), ctx));
        if !self.small_input {
            x = max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for (_, stage) in self.stages() {
            for block in stage {
                x = block.forward(x, ctx);
            }
        }
        let [n, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([n, c]);
        self.fc.forward(dropout(pooled, self.drop_rate, ctx, 0))
    }

    fn graph(&self, g: &mut GraphBuilder, input: &str) -> Result<String, PluginError> {
        let mut x = g.conv2d("conv1", input, &self.conv1)?;
        x = g.batch_norm("bn1", &x, &self.bn1);
        x = g.relu("relu", &x);
        if !self.small_input {
            x = g.max_pool("maxpool", &x, [3, 3], [2, 2], [1, 1, 1, 1]);
        }
        for (stage_name, stage) in self.stages() {
            for (i, block) in stage.iter().enumerate() {
                x = block.graph(g, &format!("{stage_name}.{i}"), &x)?;
            }
        }
        x = g.global_average_pool("avgpool", &x);
        x = g.flatten("flatten", &x, 1);
        Ok(g.gemm("fc", &x))
    }
}

impl ModelFamily for ResNetFamily {
    type Model<B: Backend> = ResNet<B>;

    fn init<B: Backend>(&self, num_classes: usize, device: &B::Device) -> ResNet<B> {
        let arch = self.arch;
        let conv1 = if self.small_input {
            conv(3, 64, 3, 1, 1, device)
        } else {
            conv(3, 64, 7, 2, 3, device)
        };
        let mut inputs = 64;
        let mut stage = |planes: usize, blocks: usize, stride: usize| -> Vec<Block<B>> {
            (0..blocks)
                .map(|i| {
                    let block = Block::new(
                        &arch,
                        inputs,
                        planes,
                        if i == 0 { stride } else { 1 },
                        device,
                    );
                    inputs = planes * arch.expansion();
                    block
                })
                .collect()
        };
        let layer1 = stage(64, arch.blocks[0], 1);
        let layer2 = stage(128, arch.blocks[1], 2);
        let layer3 = stage(256, arch.blocks[2], 2);
        let layer4 = stage(512, arch.blocks[3], 2);
        ResNet {
            conv1,
            bn1: BatchNorm2d::new(64, device),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: Linear::new(512 * arch.expansion(), num_classes, device),
            small_input: self.small_input,
            drop_rate: self.drop_rate,
        }
    }

    /// torchvision's initialization: convolutions Kaiming-normal (fan-out, ReLU gain), BatchNorm
    /// scale 1 and shift 0 (scale 0 on each residual branch's last BatchNorm with
    /// `zero_init_residual`), the classifier as `nn.Linear`'s default, uniform in
    /// `±1/sqrt(fan_in)`. Running statistics keep their 0 / 1 start.
    fn initial_value(&self, name: &str, shape: &[usize], rng: &mut ChaCha8Rng) -> Option<Vec<f32>> {
        let n: usize = shape.iter().product();
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            return None;
        }
        if shape.len() == 4 {
            let fan_out = (shape[0] * shape[2] * shape[3]) as f64;
            let normal = Normal::new(0.0, (2.0 / fan_out).sqrt()).expect("positive std");
            return Some((0..n).map(|_| normal.sample(rng) as f32).collect());
        }
        if name.starts_with("fc.") {
            let fan_in = if shape.len() == 2 {
                shape[1]
            } else {
                512 * self.arch.expansion()
            };
            let bound = 1.0 / (fan_in as f64).sqrt();
            let uniform = Uniform::new(-bound, bound).expect("non-empty range");
            return Some((0..n).map(|_| uniform.sample(rng) as f32).collect());
        }
        let zero_scale = self.zero_init_residual && {
            let last_bn = if self.arch.bottleneck {
                ".bn3.weight"
            } else {
                ".bn2.weight"
            };
            name.starts_with("layer") && name.ends_with(last_bn)
        };
        let value = if name.ends_with("weight") && !zero_scale {
            1.0
        } else {
            0.0
        };
        Some(vec![value; n])
    }

    fn is_head(&self, name: &str) -> bool {
        name.starts_with("fc.")
    }

    /// timm's grouping of a ResNet: the stem (`conv1`, `bn1`) is layer 0, each residual block
    /// (`layerS.B`) one layer in order, and the classifier the last.
    fn layer(&self, name: &str) -> Option<usize> {
        let blocks = self.arch.blocks;
        if name.starts_with("conv1.") || name.starts_with("bn1.") {
            return Some(0);
        }
        if self.is_head(name) {
            return Some(1 + blocks.iter().sum::<usize>());
        }
        let rest = name.strip_prefix("layer")?;
        let (stage, rest) = rest.split_once('.')?;
        let block: usize = rest.split('.').next()?.parse().ok()?;
        let stage: usize = stage.parse().ok()?;
        let before: usize = blocks.get(..stage.checked_sub(1)?)?.iter().sum();
        Some(1 + before + block)
    }
}
