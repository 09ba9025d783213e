//! Typing: the composed document becomes a [`Recipe`], section by section.
//!
//! Each top-level section is printed back to RON and deserialized on its own, so one broken
//! section does not hide the problems of the others. Errors come back with serde's field path,
//! which is looked up in the document to find the file, line and column of the value at fault.
//! Component params are not typed here: they are cut out of the document as RON text and left
//! for their plugin to parse.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::doc::{self, Field, Node, Value};
use super::schema::{BatchAugment, BatchEntry, Component, Model, Recipe};
use super::{Problem, RecipeError};

/// The top-level fields of a recipe.
const SECTIONS: [&str; 15] = [
    "name",
    "seed",
    "data",
    "model",
    "augment",
    "batch_augment",
    "loss",
    "optimizer",
    "schedule",
    "trainer",
    "metrics",
    "export",
    "loggers",
    "plugins",
    "output",
];

/// Deserializes the composed document, reporting every section's problem.
pub fn recipe(root: &Node) -> Result<Recipe, RecipeError> {
    let (recipe, problems) = partial(root);
    if problems.is_empty() {
        Ok(recipe)
    } else {
        Err(RecipeError::Invalid(problems))
    }
}

/// Deserializes every section of the composed document that can be: the recipe with those
/// sections filled in (defaults elsewhere), and the problems of the others. A problem's path
/// starts with the section it is in.
pub fn partial(root: &Node) -> (Recipe, Vec<Problem>) {
    let Value::Struct { fields, .. } = &root.value else {
        let problem = Problem::new(
            Some(root.origin.clone()),
            "",
            "a recipe is a struct: `( name: \"...\", data: (...), ... )`",
        );
        return (Recipe::default(), vec![problem]);
    };
    let mut recipe = Recipe::default();
    let mut problems = Vec::new();
    for Field { name, value, .. } in fields {
        let result = match name.as_str() {
            "name" => typed(root, name, value).map(|v| recipe.name = v),
            "seed" => typed(root, name, value).map(|v| recipe.seed = v),
            "data" => typed(root, name, value).map(|v| recipe.data = v),
            "model" => with_params::<Model>(root, name, value).map(|v| recipe.model = v),
            "augment" => list(root, name, value).map(|v| recipe.augment = v),
            "batch_augment" => batch_augment(root, value).map(|v| recipe.batch_augment = v),
            "loss" => with_params(root, name, value).map(|v| recipe.loss = v),
            "optimizer" => typed(root, name, value).map(|v| recipe.optimizer = v),
            "schedule" => typed(root, name, value).map(|v| recipe.schedule = v),
            "trainer" => typed(root, name, value).map(|v| recipe.trainer = v),
            "metrics" => list(root, name, value).map(|v| recipe.metrics = v),
            "export" => list(root, name, value).map(|v| recipe.export = v),
            "loggers" => list(root, name, value).map(|v| recipe.loggers = v),
            "plugins" => typed(root, name, value).map(|v| recipe.plugins = v),
            "output" => typed(root, name, value).map(|v| recipe.output = v),
            other => Err(vec![unknown_section(other, value)]),
        };
        if let Err(mut found) = result {
            problems.append(&mut found);
        }
    }
    (recipe, problems)
}

fn unknown_section(name: &str, value: &Node) -> Problem {
    let mut message = format!("unknown field `{name}`");
    if let Some(best) = SECTIONS
        .iter()
        .map(|s| (strsim::jaro_winkler(name, s), *s))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
    {
        message.push_str(&format!("; did you mean `{}`?", best.1));
    }
    Problem::new(Some(value.origin.clone()), name, message)
}

/// Deserializes `node` (at `path` in `root`) as a `T`.
fn typed<T: DeserializeOwned>(root: &Node, path: &str, node: &Node) -> Result<T, Vec<Problem>> {
    clshost_plugin_api::parse_config::<T>(&node.to_ron()).map_err(|e| {
        let full = match (path, e.field_path.as_str()) {
            (p, "") => p.to_string(),
            (p, f) if f.starts_with('[') => format!("{p}{f}"),
            (p, f) => format!("{p}.{f}"),
        };
        let origin = doc::parse_path(&full)
            .map(|segments| root.origin_of(&segments).clone())
            .unwrap_or_else(|| node.origin.clone());
        vec![Problem::new(Some(origin), full, e.message.to_string())]
    })
}

/// A section type with component params.
trait HasParams {
    fn set_params(&mut self, params: String);
}

impl HasParams for Component {
    fn set_params(&mut self, params: String) {
        self.params = params;
    }
}

impl HasParams for Model {
    fn set_params(&mut self, params: String) {
        self.params = params;
    }
}

impl HasParams for BatchEntry {
    fn set_params(&mut self, params: String) {
        self.params = params;
    }
}

/// `node` without its `params` field.
fn without_params(node: &Node) -> Node {
    let mut node = node.clone();
    if let Value::Struct { fields, .. } = &mut node.value {
        fields.retain(|f| f.name != "params");
    }
    node
}

/// A component's params as RON text; `()` (all defaults) when not written.
fn params_text(node: &Node) -> String {
    node.field("params")
        .map_or_else(|| "()".to_string(), Node::to_ron)
}

fn with_params<T: DeserializeOwned + HasParams>(
    root: &Node,
    path: &str,
    node: &Node,
) -> Result<T, Vec<Problem>> {
    let mut value: T = typed(root, path, &without_params(node))?;
    value.set_params(params_text(node));
    Ok(value)
}

fn list<T: DeserializeOwned + HasParams>(
    root: &Node,
    path: &str,
    node: &Node,
) -> Result<Vec<T>, Vec<Problem>> {
    let Value::List(items) = &node.value else {
        return Err(vec![Problem::new(
            Some(node.origin.clone()),
            path,
            "must be a list: `[(name: \"...\", params: (...)), ...]`",
        )]);
    };
    let mut values = Vec::new();
    let mut problems = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match with_params(root, &format!("{path}[{i}]"), item) {
            Ok(v) => values.push(v),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

fn batch_augment(root: &Node, node: &Node) -> Result<BatchAugment, Vec<Problem>> {
    let mut policy_node = node.clone();
    let entries_node = match &mut policy_node.value {
        Value::Struct { fields, .. } => fields
            .iter()
            .position(|f| f.name == "entries")
            .map(|i| fields.remove(i).value),
        _ => None,
    };
    let mut policy: BatchAugment = typed(root, "batch_augment", &policy_node)?;
    if let Some(entries) = entries_node {
        policy.entries = list(root, "batch_augment.entries", &entries)?;
    }
    Ok(policy)
}

/// The recipe as a document with every default written out and component params put back.
pub fn to_doc(recipe: &Recipe) -> Node {
    let mut root = serialize(recipe);
    let put = |node: &mut Node, params: &str| {
        let params = doc::parse(params, "params").unwrap_or_else(|_| serialize(&()));
        if let Value::Struct { fields, .. } = &mut node.value {
            let at = fields
                .iter()
                .position(|f| f.name == "name")
                .map_or(0, |i| i + 1);
            fields.insert(
                at,
                Field {
                    name: "params".into(),
                    name_origin: params.origin.clone(),
                    value: params,
                },
            );
        }
    };
    let Value::Struct { fields, .. } = &mut root.value else {
        return root;
    };
    for field in fields.iter_mut() {
        let node = &mut field.value;
        match field.name.as_str() {
            "model" => put(node, &recipe.model.params),
            "loss" => put(node, &recipe.loss.params),
            "augment" | "metrics" | "export" | "loggers" => {
                let list = match field.name.as_str() {
                    "augment" => &recipe.augment,
                    "metrics" => &recipe.metrics,
                    "loggers" => &recipe.loggers,
                    _ => &recipe.export,
                };
                if let Value::List(items) = &mut node.value {
                    for (item, component) in items.iter_mut().zip(list) {
                        put(item, &component.params);
                    }
                }
            }
            "batch_augment" => {
                if let Value::Struct { fields, .. } = &mut node.value
                    && let Some(entries) = fields.iter_mut().find(|f| f.name == "entries")
                    && let Value::List(items) = &mut entries.value.value
                {
                    for (item, entry) in items.iter_mut().zip(&recipe.batch_augment.entries) {
                        put(item, &entry.params);
                    }
                }
            }
            _ => {}
        }
    }
    root
}

/// Serializes a value to RON and parses it into a document.
fn serialize<T: Serialize>(value: &T) -> Node {
    let config = ron::ser::PrettyConfig::new().struct_names(false);
    let text = ron::ser::to_string_pretty(value, config).expect("recipe types serialize to RON");
    doc::parse(&text, "resolved").expect("ron output parses")
}
