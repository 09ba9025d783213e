//! Fine-tuning controls ([`TuneSpec`], plugin ABI 1.3) resolved against a model's parameter
//! names: which parameters are frozen, and the learning-rate scale and weight decay of each
//! trainable one (parameter groups, then layer-wise decay).
//!
//! Patterns are `glob` patterns (`*`, `?`, `[...]`) matched against whole names, with `*`
//! crossing dots: `layer1.*` is every weight of `layer1`. A pattern that matches no parameter
//! is an error, since it is almost always a typo that would otherwise train what was meant to
//! be frozen.

use std::collections::{HashMap, HashSet};

use clshost_plugin_api::{PluginError, TuneReport, TuneSpec};
use glob::Pattern;

use crate::optim::Rate;

/// What a [`TuneSpec`] selects among a model's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The frozen parameters.
    pub frozen: HashSet<String>,
    /// The trainable parameters that learn at another rate than the optimizer's own.
    pub rates: HashMap<String, Rate>,
    /// What was selected, for the host.
    pub report: TuneReport,
}

/// A compiled pattern and the text it came from.
struct Rule {
    text: String,
    pattern: Pattern,
    used: bool,
}

impl Rule {
    fn new(text: &str, what: &str) -> Result<Rule, PluginError> {
        let pattern = Pattern::new(text).map_err(|e| {
            PluginError::config(what, format!("`{text}` is not a valid pattern: {e}"))
        })?;
        Ok(Rule {
            text: text.to_string(),
            pattern,
            used: false,
        })
    }

    fn matches(&mut self, name: &str) -> bool {
        let hit = self.pattern.matches(name);
        self.used |= hit;
        hit
    }
}

/// Fails on the first rule that matched no parameter.
fn all_used(rules: &[Rule], what: &str, example: &str) -> Result<(), PluginError> {
    match rules.iter().find(|r| !r.used) {
        Some(rule) => Err(PluginError::config(
            what,
            format!(
                "pattern `{}` matches no parameter of this model (names look like `{example}`)",
                rule.text
            ),
        )),
        None => Ok(()),
    }
}

/// Resolves `spec` against the trainable parameters `params` (name and element count, in
/// module order); `layer` gives each parameter's layer for layer-wise decay (`None` when the
/// model does not group its weights).
pub fn plan(
    spec: &TuneSpec,
    params: &[(String, u64)],
    layer: impl Fn(&str) -> Option<usize>,
) -> Result<Plan, PluginError> {
    let example = params.first().map_or("", |(n, _)| n.as_str());
    let mut freeze = Vec::new();
    for text in spec.freeze.iter() {
        let (negated, body) = match text.strip_prefix('!') {
            Some(body) => (true, body),
            None => (false, text.as_str()),
        };
        freeze.push((negated, Rule::new(body, "freeze")?));
    }
    let mut groups = Vec::new();
    for (i, group) in spec.groups.iter().enumerate() {
        let what = format!("param_groups[{i}]");
        if !(group.lr_scale.is_finite() && group.lr_scale >= 0.0) {
            return Err(PluginError::config(
                &what,
                "lr_scale must be a finite number, 0 or more",
            ));
        }
        if let Some(wd) = group.weight_decay.into_option()
            && !(wd.is_finite() && wd >= 0.0)
        {
            return Err(PluginError::config(
                &what,
                "weight_decay must be a finite number, 0 or more",
            ));
        }
        if group.params.is_empty() {
            return Err(PluginError::config(&what, "names no parameter patterns"));
        }
        let rules = group
            .params
            .iter()
            .map(|p| Rule::new(p, &what))
            .collect::<Result<Vec<_>, _>>()?;
        groups.push((rules, group));
    }
    let decay = match spec.layer_decay.into_option() {
        Some(d) if !(d > 0.0 && d <= 1.0) => {
            return Err(PluginError::config(
                "layer_decay",
                "must be in (0, 1]: each layer learns at this times the rate of the next",
            ));
        }
        other => other,
    };
    let layers: HashMap<&str, usize> = match decay {
        None => HashMap::new(),
        Some(_) => params
            .iter()
            .map(|(name, _)| {
                layer(name).map(|l| (name.as_str(), l)).ok_or_else(|| {
                    PluginError::unsupported(format!(
                        "layer_decay: this model does not say which layer `{name}` belongs to"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let num_layers = layers.values().max().map_or(0, |m| m + 1);

    let mut plan = Plan {
        frozen: HashSet::new(),
        rates: HashMap::new(),
        report: TuneReport {
            group_sizes: vec![0; groups.len()].into(),
            layers: num_layers as u64,
            ..TuneReport::default()
        },
    };
    for (name, elements) in params {
        // Every rule sees every name, so that an unused pattern is one that matches nothing.
        let mut frozen = false;
        for (negated, rule) in freeze.iter_mut() {
            if rule.matches(name) {
                frozen = !*negated;
            }
        }
        let mut group = None;
        for (i, (rules, g)) in groups.iter_mut().enumerate() {
            let mut hit = false;
            for rule in rules.iter_mut() {
                hit |= rule.matches(name);
            }
            if hit && group.is_none() {
                group = Some((i, *g));
            }
        }
        if frozen {
            plan.frozen.insert(name.clone());
            plan.report.frozen += 1;
            continue;
        }
        plan.report.trainable += 1;
        plan.report.trainable_elements += elements;
        let mut rate = Rate {
            lr_scale: 1.0,
            weight_decay: None,
        };
        if let Some((i, g)) = group {
            plan.report.group_sizes[i] += 1;
            rate.lr_scale = g.lr_scale;
            rate.weight_decay = g.weight_decay.into_option();
        }
        if let (Some(d), Some(&l)) = (decay, layers.get(name.as_str())) {
            rate.lr_scale *= d.powi((num_layers - 1 - l) as i32);
        }
        if rate.lr_scale != 1.0 || rate.weight_decay.is_some() {
            plan.rates.insert(name.clone(), rate);
        }
    }
    let freeze_rules: Vec<Rule> = freeze.into_iter().map(|(_, r)| r).collect();
    all_used(&freeze_rules, "freeze", example)?;
    for (i, (rules, _)) in groups.iter().enumerate() {
        all_used(rules, &format!("param_groups[{i}]"), example)?;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clshost_plugin_api::ParamGroup;

    fn params() -> Vec<(String, u64)> {
        [
            "conv1.weight",
            "bn1.weight",
            "layer1.0.conv1.weight",
            "layer2.0.conv1.weight",
            "fc.weight",
            "fc.bias",
        ]
        .iter()
        .map(|n| (n.to_string(), 10))
        .collect()
    }

    fn layer(name: &str) -> Option<usize> {
        Some(match name.split('.').next()? {
            "conv1" | "bn1" => 0,
            "layer1" => 1,
            "layer2" => 2,
            _ => 3,
        })
    }

    fn spec(freeze: &[&str]) -> TuneSpec {
        TuneSpec {
            freeze: freeze.iter().map(|f| f.to_string().into()).collect(),
            ..TuneSpec::default()
        }
    }

    #[test]
    fn the_last_matching_freeze_rule_wins() {
        let plan = plan(&spec(&["*", "!fc.*"]), &params(), layer).unwrap();
        let mut frozen: Vec<&str> = plan.frozen.iter().map(String::as_str).collect();
        frozen.sort();
        assert_eq!(
            frozen,
            [
                "bn1.weight",
                "conv1.weight",
                "layer1.0.conv1.weight",
                "layer2.0.conv1.weight"
            ]
        );
        assert_eq!((plan.report.frozen, plan.report.trainable), (4, 2));
        assert_eq!(plan.report.trainable_elements, 20);
        assert!(plan.rates.is_empty());
    }

    #[test]
    fn groups_take_the_first_match_and_layer_decay_multiplies_in() {
        let mut s = spec(&["conv1.*"]);
        s.groups = vec![
            ParamGroup {
                params: vec!["fc.*".into()].into(),
                lr_scale: 10.0,
                weight_decay: Some(0.0).into(),
            },
            ParamGroup {
                params: vec!["fc.bias".into(), "layer1.*".into()].into(),
                lr_scale: 2.0,
                weight_decay: None.into(),
            },
        ]
        .into();
        s.layer_decay = Some(0.5).into();
        let plan = plan(&s, &params(), layer).unwrap();
        assert_eq!(plan.report.group_sizes.as_slice(), [2, 1]);
        assert_eq!(plan.report.layers, 4);
        let rate = |n: &str| plan.rates.get(n).copied();
        assert_eq!(rate("fc.bias").unwrap().lr_scale, 10.0);
        assert_eq!(rate("fc.bias").unwrap().weight_decay, Some(0.0));
        assert_eq!(rate("layer1.0.conv1.weight").unwrap().lr_scale, 2.0 * 0.25);
        assert_eq!(rate("layer2.0.conv1.weight").unwrap().lr_scale, 0.5);
        assert_eq!(rate("bn1.weight").unwrap().lr_scale, 0.125);
        assert!(plan.frozen.contains("conv1.weight"));
        assert!(rate("conv1.weight").is_none());
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let err = plan(&spec(&["layer9.*"]), &params(), layer).unwrap_err();
        assert_eq!(
            err.message.as_str(),
            "pattern `layer9.*` matches no parameter of this model (names look like \
             `conv1.weight`)"
        );
        assert!(plan(&spec(&["[oops"]), &params(), layer).is_err());
        let mut s = spec(&[]);
        s.layer_decay = Some(1.5).into();
        assert!(plan(&s, &params(), layer).is_err());
        s.layer_decay = Some(0.5).into();
        let err = plan(&s, &params(), |_| None).unwrap_err();
        assert!(
            err.message.contains("does not say which layer"),
            "{}",
            err.message
        );
    }
}
