//! Reading and replacing a module's float tensors by name (their module path).
//!
//! Every float parameter and buffer is seen as a flat `[numel]` tensor plus its shape, so
//! tensors of any rank can sit in one map; reshaping back is free for contiguous tensors.

use std::collections::{HashMap, HashSet};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

/// One float tensor of a module, flattened.
#[derive(Debug, Clone)]
pub struct Entry<B: Backend> {
    /// Its name, the module path joined with dots (`layer1.0.bn1.running_mean`).
    pub name: String,
    /// Its shape in the module.
    pub shape: Vec<usize>,
    /// Its elements as a `[numel]` tensor.
    pub value: Tensor<B, 1>,
    /// Whether it is a trainable parameter (buffers such as running statistics are not).
    pub trainable: bool,
}

/// The module path of the tensor being visited.
#[derive(Default)]
struct Path(Vec<String>);

impl Path {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn name(&self) -> String {
        self.0.join(".")
    }
}

struct Collector<B: Backend> {
    path: Path,
    entries: Vec<Entry<B>>,
}

impl<B: Backend> ModuleVisitor<B> for Collector<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        let shape = value.dims().to_vec();
        let numel: usize = shape.iter().product();
        self.entries.push(Entry {
            name: self.path.name(),
            shape,
            trainable: param.is_require_grad(),
            value: value.reshape([numel]),
        });
    }
}

/// Every float tensor of `module`, in module order.
pub fn collect<B: Backend, M: Module<B>>(module: &M) -> Vec<Entry<B>> {
    let mut collector = Collector {
        path: Path::default(),
        entries: Vec::new(),
    };
    module.visit(&mut collector);
    collector.entries
}

/// Every float tensor of an autodiff module, as values of its inner backend.
pub fn collect_inner<B: AutodiffBackend, M: Module<B>>(module: &M) -> Vec<Entry<B::InnerBackend>> {
    collect(module)
        .into_iter()
        .map(|e| Entry {
            name: e.name,
            shape: e.shape,
            value: e.value.inner(),
            trainable: e.trainable,
        })
        .collect()
}

struct Assigner<'a, B: Backend> {
    path: Path,
    values: &'a HashMap<String, Tensor<B, 1>>,
}

impl<B: Backend> ModuleMapper<B> for Assigner<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(value) = self.values.get(&self.path.name()) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let mut value = value.clone().reshape(tensor.shape());
        if require_grad {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}

/// `module` with each float tensor named in `values` replaced (same number of elements,
/// reshaped to the tensor's shape); trainable parameters stay trainable.
pub fn assign<B: Backend, M: Module<B>>(module: M, values: &HashMap<String, Tensor<B, 1>>) -> M {
    let mut assigner = Assigner {
        path: Path::default(),
        values,
    };
    module.map(&mut assigner)
}

/// [`assign`] for an autodiff module, from values of its inner backend.
pub fn assign_inner<B: AutodiffBackend, M: Module<B>>(
    module: M,
    values: &HashMap<String, Tensor<B::InnerBackend, 1>>,
) -> M {
    let values: HashMap<String, Tensor<B, 1>> = values
        .iter()
        .map(|(k, v)| (k.clone(), Tensor::from_inner(v.clone())))
        .collect();
    assign(module, &values)
}

struct Trainability<'a> {
    path: Path,
    params: &'a HashSet<String>,
    frozen: &'a HashSet<String>,
}

impl<B: Backend> ModuleMapper<B> for Trainability<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = self.path.name();
        if !self.params.contains(&name) {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let tensor = tensor.set_require_grad(!self.frozen.contains(&name));
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// `module` with each of the trainable parameters `params` frozen (no gradient) when `frozen`
/// names it and trainable otherwise; other tensors (buffers) are left as they are.
pub fn set_trainable<B: Backend, M: Module<B>>(
    module: M,
    params: &HashSet<String>,
    frozen: &HashSet<String>,
) -> M {
    module.map(&mut Trainability {
        path: Path::default(),
        params,
        frozen,
    })
}

struct GradCollector<'a, B: AutodiffBackend> {
    path: Path,
    grads: &'a mut B::Gradients,
    out: Vec<(String, Tensor<B::InnerBackend, 1>)>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradCollector<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !param.is_require_grad() {
            return;
        }
        if let Some(grad) = param.val().grad_remove(self.grads) {
            let numel = grad.shape().num_elements();
            self.out.push((self.path.name(), grad.reshape([numel])));
        }
    }
}

/// The gradients of `module`'s trainable parameters, by name, in module order.
pub fn gradients<B: AutodiffBackend, M: Module<B>>(
    module: &M,
    grads: &mut B::Gradients,
) -> Vec<(String, Tensor<B::InnerBackend, 1>)> {
    let mut collector = GradCollector {
        path: Path::default(),
        grads,
        out: Vec::new(),
    };
    module.visit(&mut collector);
    collector.out
}
